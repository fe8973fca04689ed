//! The Portcullis quickstart: one command to a running local cluster (control plane, two data planes, a
//! development identity provider and an echo upstream), configured through the real Admin API.

pub mod echo;
pub mod idp;
pub mod quickstart;
