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
    args: Vec<std::ffi::OsString>,
}

impl Server {
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts it again after [`Server::kill`], with the same ports and store (its streams
    /// recover from disk and catch up from the cluster).
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "restart of a running server");
        self.child = Some(spawn(&self.args));
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

/// `n` servers: one alone, or a cluster whose members route to each other (and do not
/// advertise each other to clients).
pub fn start(n: usize, dir: &Path) -> Vec<Server> {
    // The fleet's warnings (failed tries, sweeps) show with a failing test's output;
    // `RUST_LOG` chooses others.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("valori_fleet=warn")),
        )
        .with_test_writer()
        .try_init();
    let ports: Vec<(u16, u16)> = (0..n).map(|_| (free_port(), free_port())).collect();
    ports
        .iter()
        .enumerate()
        .map(|(i, (port, cluster))| {
            let store = dir.join(format!("n{i}"));
            std::fs::create_dir_all(&store).unwrap();
            let mut cmd: Vec<std::ffi::OsString> =
                ["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"]
                    .iter()
                    .map(std::ffi::OsString::from)
                    .collect();
            cmd.push(store.into_os_string());
            cmd.extend(["--server_name".into(), format!("n{i}").into(), "-l".into()]);
            cmd.push(dir.join(format!("n{i}.log")).into_os_string());
            if n > 1 {
                let routes: Vec<String> = ports
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .map(|(_, (_, c))| format!("nats://127.0.0.1:{c}"))
                    .collect();
                for a in [
                    "--cluster_name".to_string(),
                    "valori-test".into(),
                    "--cluster".into(),
                    format!("nats://127.0.0.1:{cluster}"),
                    "--routes".into(),
                    routes.join(","),
                    // Clients reach the servers they are given, no others: a test cuts a
                    // client off by stopping its server.
                    "--no_advertise".into(),
                ] {
                    cmd.push(a.into());
                }
            }
            Server {
                child: Some(spawn(&cmd)),
                port: *port,
                args: cmd,
            }
        })
        .collect()
}

fn spawn(args: &[std::ffi::OsString]) -> Child {
    Command::new(nats_server())
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {} (install nats-server): {e}", nats_server()))
}
