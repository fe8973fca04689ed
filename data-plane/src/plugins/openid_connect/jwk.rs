//! Private keys for `private_key_jwt` client authentication, read from a JWK (EC P-256 or RSA).

use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::Value;

/// A signing key for `private_key_jwt` from a private JWK (EC P-256 or RSA).
pub(super) fn signing_key(jwk: &Value) -> Result<(EncodingKey, Algorithm, Option<String>), String> {
    let b64 = |name: &str| -> Result<Vec<u8>, String> {
        let s = jwk
            .get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| format!("client_jwk: missing '{name}'"))?;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s.trim_end_matches('='))
            .map_err(|_| format!("client_jwk: '{name}' is not base64url"))
    };
    let kid = jwk.get("kid").and_then(Value::as_str).map(str::to_string);
    match jwk.get("kty").and_then(Value::as_str) {
        Some("EC") => {
            if jwk.get("crv").and_then(Value::as_str) != Some("P-256") {
                return Err("client_jwk: only the P-256 curve is supported for EC keys".into());
            }
            let (d, x, y) = (b64("d")?, b64("x")?, b64("y")?);
            if d.len() != 32 || x.len() != 32 || y.len() != 32 {
                return Err("client_jwk: P-256 coordinates must be 32 bytes".into());
            }
            Ok((
                EncodingKey::from_ec_der(&der::ec_p256_pkcs8(&d, &x, &y)),
                Algorithm::ES256,
                kid,
            ))
        }
        Some("RSA") => {
            let parts = ["n", "e", "d", "p", "q", "dp", "dq", "qi"]
                .iter()
                .map(|n| b64(n))
                .collect::<Result<Vec<_>, _>>()?;
            let alg = match jwk.get("alg").and_then(Value::as_str) {
                Some("RS384") => Algorithm::RS384,
                Some("RS512") => Algorithm::RS512,
                Some("PS256") => Algorithm::PS256,
                _ => Algorithm::RS256,
            };
            Ok((EncodingKey::from_rsa_der(&der::rsa_pkcs1(&parts)), alg, kid))
        }
        _ => Err("client_jwk: kty must be EC or RSA".into()),
    }
}

/// Minimal DER encoding of private keys from JWK parameters.
mod der {
    fn len(n: usize) -> Vec<u8> {
        if n < 0x80 {
            vec![n as u8]
        } else {
            let bytes: Vec<u8> = n
                .to_be_bytes()
                .iter()
                .copied()
                .skip_while(|b| *b == 0)
                .collect();
            let mut out = vec![0x80 | bytes.len() as u8];
            out.extend(bytes);
            out
        }
    }
    fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        out.extend(len(content.len()));
        out.extend_from_slice(content);
        out
    }
    fn uint(bytes: &[u8]) -> Vec<u8> {
        let trimmed: Vec<u8> = bytes.iter().copied().skip_while(|b| *b == 0).collect();
        let mut v = if trimmed.is_empty() { vec![0] } else { trimmed };
        if v[0] & 0x80 != 0 {
            v.insert(0, 0);
        }
        tlv(0x02, &v)
    }
    /// PKCS#1 RSAPrivateKey from n, e, d, p, q, dp, dq, qi.
    pub fn rsa_pkcs1(parts: &[Vec<u8>]) -> Vec<u8> {
        let mut body = uint(&[0]);
        for p in parts {
            body.extend(uint(p));
        }
        tlv(0x30, &body)
    }
    /// PKCS#8 wrapping of an EC P-256 private key with its public point.
    pub fn ec_p256_pkcs8(d: &[u8], x: &[u8], y: &[u8]) -> Vec<u8> {
        const EC_PUBLIC_KEY: &[u8] = &[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
        const P256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
        let mut point = vec![0x00, 0x04];
        point.extend_from_slice(x);
        point.extend_from_slice(y);
        let mut ec = uint(&[1]);
        ec.extend(tlv(0x04, d));
        ec.extend(tlv(0xa1, &tlv(0x03, &point)));
        let ec_key = tlv(0x30, &ec);
        let mut alg = EC_PUBLIC_KEY.to_vec();
        alg.extend_from_slice(P256);
        let mut body = uint(&[0]);
        body.extend(tlv(0x30, &alg));
        body.extend(tlv(0x04, &ec_key));
        tlv(0x30, &body)
    }
}
