//! One cluster CA for several control planes, given by the operator as files: both control planes issue
//! and present certificates under it, a node paired through one trusts the other, the key is read in
//! place and never copied, and a CA that does not fit is refused at start with the reason.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
use tests::{eventually, ControlPlane, CpOptions, DataPlane, DpOptions, PATIENCE};

/// A CA (or, with `ca: false`, a plain certificate) and its key, written to `dir`.
fn write_ca(dir: &Path, name: &str, ca: bool) -> (PathBuf, PathBuf, String) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, format!("{name} CA"));
    if ca {
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
    }
    let cert = params.self_signed(&key).unwrap();
    let (cert_path, key_path) = (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}.key")),
    );
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    let fingerprint = shared::digest::sha256_hex(cert.der());
    (cert_path, key_path, fingerprint)
}

async fn configuration(cp: &ControlPlane) -> serde_json::Value {
    cp.get("/").await.unwrap()["configuration"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_control_planes_share_the_operators_ca() {
    let files = tempfile::tempdir().unwrap();
    let (cert, key, fingerprint) = write_ca(files.path(), "acme", true);
    let opts = CpOptions {
        cluster_ca: Some((cert.clone(), key.clone())),
        ..Default::default()
    };
    let cp_a = ControlPlane::start_with(opts.clone()).await;
    let cp_b = ControlPlane::start_with(opts).await;
    for cp in [&cp_a, &cp_b] {
        let c = configuration(cp).await;
        assert_eq!(c["ca_fingerprint"], fingerprint.as_str());
        assert_eq!(c["cluster_ca"], "operator");
        let pki = cp.data_dir.join("pki");
        assert!(
            !pki.join("cluster-ca.key").exists(),
            "the key is not copied"
        );
        let names = std::fs::read_dir(&pki).unwrap().count();
        assert!(
            names > 0,
            "the server certificate is issued into the data dir"
        );
    }
    // A node paired through A pins this CA, so it completes TLS with B too; B then refuses it only because
    // this control plane's own store has no record of it.
    let mut dp = DataPlane::start(&cp_a).await;
    let dir = dp.data_dir.clone();
    dp.stop().await;
    let dp = DataPlane::start_with(DpOptions {
        data_dir: Some(dir),
        control_plane: Some(cp_b.cluster_addr.to_string()),
        ..Default::default()
    })
    .await;
    let error = eventually(PATIENCE, "the node reaches control plane B", || async {
        let st = dp.status().await.ok()?;
        st["control_plane"]["last_error"]
            .as_str()
            .filter(|e| !e.is_empty())
            .map(String::from)
    })
    .await;
    assert!(
        error.contains("is not known to this control plane"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ca_that_does_not_fit_is_refused_at_start() {
    let files = tempfile::tempdir().unwrap();
    let (cert, _, _) = write_ca(files.path(), "one", true);
    let (_, other_key, _) = write_ca(files.path(), "two", true);
    let (leaf, leaf_key, _) = write_ca(files.path(), "leaf", false);
    let start = |cert: PathBuf, key: PathBuf| async move {
        let dir = tempfile::tempdir().unwrap();
        let admin = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let cluster = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let config = control_plane::Config {
            data_dir: dir.path().to_path_buf(),
            admin_listen: admin.local_addr().unwrap(),
            cluster_listen: cluster.local_addr().unwrap(),
            cluster_ca_cert_file: Some(cert),
            cluster_ca_key_file: Some(key),
            ..control_plane::Config::defaults()
        };
        let outcome = control_plane::run(
            config,
            control_plane::Listeners {
                admin,
                cluster,
                manager: None,
            },
            std::future::ready(()),
        )
        .await;
        format!("{:#}", outcome.unwrap_err())
    };
    let e = start(cert.clone(), other_key).await;
    assert!(e.contains("does not match"), "{e}");
    let e = start(leaf, leaf_key).await;
    assert!(e.contains("not a CA"), "{e}");
    let e = start(cert, files.path().join("missing.key")).await;
    assert!(e.contains("cannot read --cluster-ca-key-file"), "{e}");
}
