//! A private nats-server (Debian's, see scripts/setup.sh) on a free loopback port, for
//! the tests of several servers: stopped and started again on the same port for the
//! fault tests, killed when dropped. It keeps nothing on disk (no JetStream).
use std::{
    net::{SocketAddr, TcpListener, TcpStream},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

pub struct Nats {
    addr: SocketAddr,
    child: Option<Child>,
}

impl Nats {
    pub fn start() -> Nats {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut nats = Nats {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            child: None,
        };
        nats.resume();
        nats
    }

    /// `nats://127.0.0.1:PORT`, what `--nats` takes.
    pub fn url(&self) -> String {
        format!("nats://{}", self.addr)
    }

    /// Kills it (SIGKILL): connections drop at once, nothing it held is kept.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port and waits until it accepts connections.
    pub fn resume(&mut self) {
        assert!(self.child.is_none(), "nats-server is running already");
        let binary = ["/usr/sbin/nats-server", "/usr/bin/nats-server"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .unwrap_or("nats-server");
        let child = Command::new(binary)
            .args(["-a", "127.0.0.1", "-p", &self.addr.port().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server (scripts/setup.sh installs it: nats_tool)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(self.addr).is_err() {
            assert!(Instant::now() < deadline, "nats-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.stop();
    }
}
