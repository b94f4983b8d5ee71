//! `nats-server` processes with JetStream on loopback ports picked here, killed on drop: one
//! server, or a cluster whose members route to each other. Shared by the tests and the
//! replication benchmark (`fleet/examples/fleet_bench.rs`).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One `nats-server` process with JetStream, on loopback; killed on drop.
pub struct Server {
    child: Option<Child>,
    port: u16,
}

impl Server {
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn nats_server() -> String {
    std::env::var("NATS_SERVER").unwrap_or_else(|_| "nats-server".into())
}

/// `n` servers: one alone, or a cluster whose members route to each other.
pub fn start(n: usize, dir: &Path) -> Vec<Server> {
    let ports: Vec<(u16, u16)> = (0..n).map(|_| (free_port(), free_port())).collect();
    ports
        .iter()
        .enumerate()
        .map(|(i, (port, cluster))| {
            let store = dir.join(format!("n{i}"));
            std::fs::create_dir_all(&store).unwrap();
            let mut cmd = Command::new(nats_server());
            cmd.args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
                .arg(&store)
                .args(["--server_name", &format!("n{i}")])
                .arg("-l")
                .arg(dir.join(format!("n{i}.log")))
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            if n > 1 {
                let routes: Vec<String> = ports
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .map(|(_, (_, c))| format!("nats://127.0.0.1:{c}"))
                    .collect();
                cmd.args(["--cluster_name", "valori-test"])
                    .args(["--cluster", &format!("nats://127.0.0.1:{cluster}")])
                    .args(["--routes", &routes.join(",")]);
            }
            let child = cmd.spawn().unwrap_or_else(|e| {
                panic!("starting {} (install nats-server): {e}", nats_server())
            });
            Server {
                child: Some(child),
                port: *port,
            }
        })
        .collect()
}
