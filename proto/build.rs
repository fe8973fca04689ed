//! Compiles `cluster.proto` with protox, a pure-Rust protobuf compiler, so building needs no system `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=cluster.proto");
    let fds = protox::compile(["cluster.proto"], ["."])?;
    tonic_build::configure()
        .build_client(true)
        .build_server(true)
        .bytes([
            "portcullis.cluster.v1.Snapshot.payload",
            "portcullis.cluster.v1.Delta.changes",
            "portcullis.cluster.v1.PayloadPart.data",
        ])
        .codec_path("crate::codec::ClusterCodec")
        .compile_fds(fds)?;
    Ok(())
}
