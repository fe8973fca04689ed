//! Generated types and gRPC stubs of the Portcullis cluster protocol (`cluster.proto`).
//!
//! These types stay at the boundary: both planes convert them into `shared` types, where validation happens.

#[allow(clippy::all, missing_docs)]
mod generated {
    tonic::include_proto!("portcullis.cluster.v1");
}
pub use generated::*;

/// Payload encodings of `Snapshot` and `Delta` messages.
pub mod payload {
    use std::io::Read;

    /// Zstandard, for nodes that list the `zstd` feature.
    pub const ZSTD: &str = "zstd";
    /// Feature a node lists when it applies `Delta` messages.
    pub const FEATURE_DELTA: &str = "delta";
    /// Feature a node lists when it reads zstd payloads.
    pub const FEATURE_ZSTD: &str = ZSTD;

    /// Compresses a payload with zstd (level 3: fast, and JSON configs shrink about tenfold).
    pub fn compress(bytes: &[u8]) -> Vec<u8> {
        zstd::bulk::compress(bytes, 3).expect("compressing into memory cannot fail")
    }

    /// The plain payload of `bytes` sent with `encoding`, refused when it would exceed `limit` bytes
    /// (a small message cannot make the node allocate without bound).
    pub fn decompress(encoding: &str, bytes: &[u8], limit: usize) -> Result<Vec<u8>, String> {
        match encoding {
            "" => {
                if bytes.len() > limit {
                    return Err(too_large(limit));
                }
                Ok(bytes.to_vec())
            }
            ZSTD => {
                let decoder = zstd::stream::read::Decoder::new(bytes)
                    .map_err(|e| format!("cannot read the zstd payload: {e}"))?;
                let mut out = Vec::new();
                decoder
                    .take(limit as u64 + 1)
                    .read_to_end(&mut out)
                    .map_err(|e| format!("the zstd payload is damaged: {e}"))?;
                if out.len() > limit {
                    return Err(too_large(limit));
                }
                Ok(out)
            }
            other => Err(format!("unknown payload encoding '{other}'")),
        }
    }

    fn too_large(limit: usize) -> String {
        format!(
            "the payload is larger than this node's limit of {limit} bytes (--max-config-bytes)"
        )
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn round_trip_and_limits() {
            let plain = br#"{"routes":{}}"#.repeat(1000);
            let packed = compress(&plain);
            assert!(packed.len() < plain.len() / 10);
            assert_eq!(decompress(ZSTD, &packed, plain.len()).unwrap(), plain);
            assert!(decompress(ZSTD, &packed, plain.len() - 1)
                .unwrap_err()
                .contains("limit"));
            assert!(decompress(ZSTD, b"not zstd", 100)
                .unwrap_err()
                .contains("zstd"));
            assert!(decompress("gzip", b"x", 100)
                .unwrap_err()
                .contains("unknown"));
            assert_eq!(decompress("", b"abc", 3).unwrap(), b"abc");
        }
    }
}
