//! A real redis-server for the cache's tests, on a port of its own, stopped and started at
//! will. `scripts/test.sh` installs Debian's redis-server; without it these tests fail and
//! say so.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct RedisServer {
    port: u16,
    child: Option<Child>,
    /// TLS only, with a password (as ElastiCache with in-transit encryption and AUTH).
    tls: Option<Tls>,
}

struct Tls {
    dir: std::path::PathBuf,
    password: String,
}

impl RedisServer {
    /// Starts redis-server on a free loopback port, without persistence.
    pub fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut server = Self {
            port,
            child: None,
            tls: None,
        };
        server.restart();
        server
    }

    /// Starts redis-server serving TLS only (a self-signed certificate made with openssl)
    /// and asking for `password`.
    pub fn start_tls(password: &str) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let dir = std::env::temp_dir().join(format!("warmgate-redis-tls-{port}"));
        std::fs::create_dir_all(&dir).unwrap();
        // A CA, and the server's certificate it signs for 127.0.0.1.
        let openssl = |args: &[&str]| {
            let status = Command::new("openssl")
                .args(args)
                .current_dir(&dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .expect("openssl makes the test certificates (Debian: apt-get install openssl)");
            assert!(status.success(), "openssl {args:?} failed");
        };
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=warmgate test CA",
            "-days",
            "1",
            "-keyout",
            "ca-key.pem",
            "-out",
            "ca.pem",
        ]);
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "key.pem",
            "-out",
            "server.csr",
        ]);
        std::fs::write(
            dir.join("san.ext"),
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
        )
        .unwrap();
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca-key.pem",
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            "san.ext",
            "-out",
            "cert.pem",
        ]);
        let mut server = Self {
            port,
            child: None,
            tls: Some(Tls {
                dir,
                password: password.into(),
            }),
        };
        server.restart();
        server
    }

    /// The URL a client uses (for TLS, with [`RedisServer::ca_file`] to trust).
    pub fn url(&self) -> String {
        match self.tls {
            None => format!("redis://127.0.0.1:{}/", self.port),
            Some(_) => format!("rediss://127.0.0.1:{}/", self.port),
        }
    }

    /// The CA that signed a TLS server's certificate.
    pub fn ca_file(&self) -> Option<std::path::PathBuf> {
        self.tls.as_ref().map(|tls| tls.dir.join("ca.pem"))
    }

    /// A client of this server (with its password and CA, if any).
    pub fn client(&self) -> redis::Client {
        let mut info = redis::IntoConnectionInfo::into_connection_info(self.url()).unwrap();
        let Some(tls) = &self.tls else {
            return redis::Client::open(info).unwrap();
        };
        let settings = info.redis_settings().clone().set_password(&tls.password);
        info = info.set_redis_settings(settings);
        let root_cert = Some(std::fs::read(tls.dir.join("ca.pem")).unwrap());
        redis::Client::build_with_tls(
            info,
            redis::TlsCertificates {
                client_tls: None,
                root_cert,
            },
        )
        .unwrap()
    }

    /// Starts it again on the same port (empty: nothing is persisted).
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let binary = std::env::var("REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
        let mut command = Command::new(&binary);
        match &self.tls {
            None => command.args(["--port", &self.port.to_string()]),
            Some(tls) => command
                .args(["--port", "0", "--tls-port", &self.port.to_string()])
                .arg("--tls-cert-file")
                .arg(tls.dir.join("cert.pem"))
                .arg("--tls-key-file")
                .arg(tls.dir.join("key.pem"))
                .arg("--tls-ca-cert-file")
                .arg(tls.dir.join("ca.pem"))
                .args(["--tls-auth-clients", "no", "--requirepass", &tls.password]),
        };
        let child = command
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--protected-mode", "no", "--daemonize", "no"])
            // DEBUG SLEEP stalls it, as a saturated node would.
            .args(["--enable-debug-command", "local"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| {
                panic!(
                    "cannot start {binary:?} ({error}): the cache tests need a real redis-server; \
                     scripts/test.sh installs it (Debian: apt-get install redis-server), or set REDIS_SERVER"
                )
            });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.answers_ping() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not answer PING within 10 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops it (SIGKILL: as a failed node would).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn answers_ping(&self) -> bool {
        if self.tls.is_some() {
            // A TLS port: it is up once it accepts connections.
            return TcpStream::connect(("127.0.0.1", self.port)).is_ok();
        }
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
        let mut reply = [0u8; 7];
        stream.write_all(b"PING\r\n").is_ok()
            && stream.read_exact(&mut reply).is_ok()
            && &reply == b"+PONG\r\n"
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}
