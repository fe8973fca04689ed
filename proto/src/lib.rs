//! Generated types and gRPC stubs of the Portcullis cluster protocol (`cluster.proto`).
//!
//! These types stay at the boundary: both planes convert them into `shared` types, where validation happens.

#[allow(clippy::all, missing_docs)]
mod generated {
    tonic::include_proto!("portcullis.cluster.v1");
}
pub use generated::*;

/// How long a cluster connection may read nothing before HTTP/2 checks it with a PING, on the node and
/// the control plane alike: the heartbeat timeout, 10 s at least. While heartbeats are answered the PING
/// never fires, so a large cluster pays for one liveness check per stream, not two.
pub fn keepalive_interval(heartbeat_timeout: std::time::Duration) -> std::time::Duration {
    heartbeat_timeout.max(std::time::Duration::from_secs(10))
}

/// The codec of every cluster RPC: prost messages, with a stream's message buffers kept small.
pub mod codec {
    use std::marker::PhantomData;

    use tonic::codec::{BufferSettings, Codec, ProstCodec};

    /// Bytes each stream's encode and decode buffer starts with. tonic encodes every outgoing message into
    /// its stream's one buffer, which grows to the largest message and keeps that size while the stream
    /// lives; payloads go in parts that fit ([`crate::payload::PART_BYTES`]), so it never grows.
    pub const BUFFER_BYTES: usize = 4 * 1024;

    fn settings() -> BufferSettings {
        // Every message is handed to HTTP/2 on its own (which batches writes anyway), rather than several
        // queued messages being gathered into the buffer first, which would grow it.
        BufferSettings::new(BUFFER_BYTES, 1)
    }

    /// [`ProstCodec`] with [`BUFFER_BYTES`] buffers.
    #[derive(Debug, Clone)]
    pub struct ClusterCodec<T, U>(PhantomData<(T, U)>);

    impl<T, U> Default for ClusterCodec<T, U> {
        fn default() -> Self {
            ClusterCodec(PhantomData)
        }
    }

    impl<T, U> Codec for ClusterCodec<T, U>
    where
        T: prost::Message + Send + 'static,
        U: prost::Message + Default + Send + 'static,
    {
        type Encode = T;
        type Decode = U;
        type Encoder = <ProstCodec<T, U> as Codec>::Encoder;
        type Decoder = <ProstCodec<T, U> as Codec>::Decoder;

        fn encoder(&mut self) -> Self::Encoder {
            ProstCodec::<T, U>::raw_encoder(settings())
        }

        fn decoder(&mut self) -> Self::Decoder {
            ProstCodec::<T, U>::raw_decoder(settings())
        }
    }
}

/// Payload encodings of `Snapshot` and `Delta` messages.
pub mod payload {
    use std::io::Read;

    use prost::bytes::{Bytes, BytesMut};

    /// Zstandard, for nodes that list the `zstd` feature.
    pub const ZSTD: &str = "zstd";
    /// Feature a node lists when it applies `Delta` messages.
    pub const FEATURE_DELTA: &str = "delta";
    /// Feature a node lists when it reads zstd payloads.
    pub const FEATURE_ZSTD: &str = ZSTD;
    /// Feature a node lists when it assembles payloads from `PayloadPart` messages.
    pub const FEATURE_PARTS: &str = "parts";

    /// Payload bytes in one `PayloadPart`: with its framing, within [`crate::codec::BUFFER_BYTES`].
    pub const PART_BYTES: usize = crate::codec::BUFFER_BYTES - 32;
    /// Payload bytes the `Snapshot` or `Delta` after the parts carries at most, leaving room for its
    /// version and hashes.
    pub const LAST_BYTES: usize = crate::codec::BUFFER_BYTES - 256;

    /// Splits a payload into the `PayloadPart`s sent first and the rest the final message carries (all of
    /// it, and no part, when it is small). Parts share `payload`'s memory.
    pub fn split(payload: &Bytes) -> (Vec<Bytes>, Bytes) {
        let len = payload.len();
        if len <= LAST_BYTES {
            return (Vec::new(), payload.clone());
        }
        let in_parts = ((len - LAST_BYTES).div_ceil(PART_BYTES) * PART_BYTES).min(len);
        let parts = (0..in_parts)
            .step_by(PART_BYTES)
            .map(|at| payload.slice(at..(at + PART_BYTES).min(in_parts)))
            .collect();
        (parts, payload.slice(in_parts..))
    }

    /// The payload of the next `Snapshot` or `Delta`, assembled from the parts received before it.
    #[derive(Debug, Default)]
    pub struct Assembly {
        pending: BytesMut,
        /// Parts were refused for making the payload larger than the limit.
        too_large: Option<usize>,
    }

    impl Assembly {
        /// Adds a part; past `limit` bytes in all, the parts are dropped and the payload they belong to
        /// is refused when its final message comes.
        pub fn push(&mut self, data: &[u8], limit: usize) {
            if self.too_large.is_some() {
                return;
            }
            if self.pending.len() + data.len() > limit {
                self.pending = BytesMut::new();
                self.too_large = Some(limit);
                return;
            }
            self.pending.extend_from_slice(data);
        }

        /// The whole payload whose final message carries `last`; the assembly is empty again after.
        pub fn finish(&mut self, last: Bytes) -> Result<Bytes, PayloadError> {
            if let Some(limit) = self.too_large.take() {
                return Err(PayloadError::TooLarge { limit });
            }
            if self.pending.is_empty() {
                return Ok(last);
            }
            let mut whole = std::mem::take(&mut self.pending);
            whole.extend_from_slice(&last);
            Ok(whole.freeze())
        }
    }

    /// Compresses a payload with zstd (level 3: fast, and JSON configs shrink about tenfold).
    pub fn compress(bytes: &[u8]) -> Vec<u8> {
        zstd::bulk::compress(bytes, 3).expect("compressing into memory cannot fail")
    }

    /// The plain payload of `bytes` sent with `encoding`, refused when it would exceed `limit` bytes
    /// (a small message cannot make the node allocate without bound).
    pub fn decompress(encoding: &str, bytes: &[u8], limit: usize) -> Result<Vec<u8>, PayloadError> {
        match encoding {
            "" => {
                if bytes.len() > limit {
                    return Err(PayloadError::TooLarge { limit });
                }
                Ok(bytes.to_vec())
            }
            ZSTD => {
                let damaged = |e: std::io::Error| PayloadError::Damaged(e.to_string());
                let decoder = zstd::stream::read::Decoder::new(bytes).map_err(damaged)?;
                let mut out = Vec::new();
                decoder
                    .take(limit as u64 + 1)
                    .read_to_end(&mut out)
                    .map_err(damaged)?;
                if out.len() > limit {
                    return Err(PayloadError::TooLarge { limit });
                }
                Ok(out)
            }
            other => Err(PayloadError::UnknownEncoding(other.to_string())),
        }
    }

    /// Why a node cannot read a payload; [`PayloadError::kind`] is the NACK's `kind`.
    #[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
    pub enum PayloadError {
        #[error(
            "the payload is larger than this node's limit of {limit} bytes (--max-config-bytes)"
        )]
        TooLarge { limit: usize },
        #[error("the zstd payload is damaged: {0}")]
        Damaged(String),
        #[error("unknown payload encoding '{0}'")]
        UnknownEncoding(String),
    }

    impl PayloadError {
        /// A short label of the reason, for metrics.
        pub fn kind(&self) -> &'static str {
            match self {
                PayloadError::TooLarge { .. } => "too_large",
                PayloadError::Damaged(_) => "undecodable",
                PayloadError::UnknownEncoding(_) => "unknown_encoding",
            }
        }
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
            let over = decompress(ZSTD, &packed, plain.len() - 1).unwrap_err();
            assert_eq!(over.kind(), "too_large");
            assert!(over.to_string().contains("limit"));
            let damaged = decompress(ZSTD, b"not zstd", 100).unwrap_err();
            assert_eq!(damaged.kind(), "undecodable");
            assert!(damaged.to_string().contains("zstd"));
            let unknown = decompress("gzip", b"x", 100).unwrap_err();
            assert_eq!(unknown.kind(), "unknown_encoding");
            assert!(unknown.to_string().contains("unknown"));
            assert_eq!(decompress("", b"abc", 3).unwrap(), b"abc");
        }

        #[test]
        fn parts_reassemble_to_the_payload_and_fit_the_buffer() {
            for len in [
                0,
                1,
                LAST_BYTES,
                LAST_BYTES + 1,
                PART_BYTES + LAST_BYTES,
                PART_BYTES + LAST_BYTES + 1,
                37_683,
                1 << 20,
            ] {
                let payload = Bytes::from((0..len).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
                let (parts, last) = split(&payload);
                assert!(last.len() <= LAST_BYTES, "{len}");
                assert!(parts.iter().all(|p| !p.is_empty() && p.len() <= PART_BYTES));
                assert_eq!(parts.is_empty(), len <= LAST_BYTES, "{len}");
                let mut a = Assembly::default();
                for p in &parts {
                    a.push(p, len);
                }
                assert_eq!(a.finish(last).unwrap(), payload, "{len}");
                // The assembly is empty for the next payload.
                assert_eq!(a.finish(Bytes::from_static(b"x")).unwrap(), &b"x"[..]);
            }
        }

        #[test]
        fn parts_past_the_limit_refuse_their_payload_only() {
            let mut a = Assembly::default();
            a.push(&[0; 10], 15);
            a.push(&[0; 10], 15);
            a.push(&[0; 10], 15);
            assert_eq!(
                a.finish(Bytes::new()).unwrap_err(),
                PayloadError::TooLarge { limit: 15 }
            );
            a.push(&[1; 10], 15);
            assert_eq!(a.finish(Bytes::from_static(b"!")).unwrap().len(), 11);
        }
    }
}
