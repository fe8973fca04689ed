//! Generated types and gRPC stubs of the Portcullis cluster protocol (`cluster.proto`).
//!
//! These types stay at the boundary: both planes convert them into `shared` types, where validation happens.

#![allow(clippy::all, missing_docs)]

tonic::include_proto!("portcullis.cluster.v1");
