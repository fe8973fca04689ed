//! A DNS server for tests: answers A queries for the names it is given, with a fixed TTL, over UDP on
//! an ephemeral loopback port; other names get NXDOMAIN and AAAA queries for known names an empty
//! answer. Records change while it runs, and it counts the queries it answered per name.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinEncodable};
use tokio::net::UdpSocket;

#[derive(Default)]
struct Zone {
    records: HashMap<String, Vec<Ipv4Addr>>,
    queries: HashMap<String, usize>,
}

/// The running server; stops when dropped.
pub struct TestDns {
    pub addr: SocketAddr,
    zone: Arc<Mutex<Zone>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestDns {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn key(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

impl TestDns {
    /// Starts a server whose answers carry `ttl` seconds.
    pub async fn start(ttl: u32) -> TestDns {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind dns");
        let addr = socket.local_addr().unwrap();
        let zone = Arc::new(Mutex::new(Zone::default()));
        let served = zone.clone();
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; 1500];
            loop {
                let Ok((n, from)) = socket.recv_from(&mut buf).await else {
                    continue;
                };
                let Ok(query) = Message::from_bytes(&buf[..n]) else {
                    continue;
                };
                let answer = answer(&query, &served, ttl);
                if let Ok(bytes) = answer.to_bytes() {
                    let _ = socket.send_to(&bytes, from).await;
                }
            }
        });
        TestDns { addr, zone, task }
    }

    /// Makes `name` resolve to `ips` (none: NXDOMAIN).
    pub fn set(&self, name: &str, ips: &[Ipv4Addr]) {
        let mut zone = self.zone.lock().unwrap();
        if ips.is_empty() {
            zone.records.remove(&key(name));
        } else {
            zone.records.insert(key(name), ips.to_vec());
        }
    }

    /// How many queries for `name` were answered.
    pub fn queries(&self, name: &str) -> usize {
        let zone = self.zone.lock().unwrap();
        zone.queries.get(&key(name)).copied().unwrap_or(0)
    }
}

fn answer(query: &Message, zone: &Mutex<Zone>, ttl: u32) -> Message {
    let mut out = Message::new();
    out.set_id(query.id())
        .set_message_type(MessageType::Response)
        .set_op_code(OpCode::Query)
        .set_authoritative(true)
        .set_recursion_desired(query.recursion_desired())
        .set_recursion_available(true);
    let mut zone = zone.lock().unwrap();
    for q in query.queries() {
        out.add_query(q.clone());
        let name = key(&q.name().to_ascii());
        *zone.queries.entry(name.clone()).or_default() += 1;
        match zone.records.get(&name) {
            None => {
                out.set_response_code(ResponseCode::NXDomain);
            }
            Some(ips) if q.query_type() == RecordType::A => {
                for ip in ips {
                    out.add_answer(Record::from_rdata(q.name().clone(), ttl, RData::A(A(*ip))));
                }
            }
            Some(_) => {}
        }
    }
    out
}
