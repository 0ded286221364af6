//! The real warmgate binary as a process, for tests that need one: signals as ECS sends
//! them, several replicas sharing Redis.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

pub struct GatewayProcess {
    pub child: Child,
    /// Where it listens, `host:port`.
    pub addr: String,
}

impl GatewayProcess {
    /// Starts `warmgate serve --config <config>` and reads its address from the banner.
    pub fn start(config: &Path) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_warmgate"))
            .args(["serve", "--config"])
            .arg(config)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the warmgate binary starts");
        // The banner names the address: "curl ... http://ADDR/v1/functions/...".
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut addr = None;
        let mut line = String::new();
        while stdout.read_line(&mut line).unwrap() > 0 {
            if let Some(rest) = line.split("http://").nth(1) {
                addr = Some(rest.split('/').next().unwrap().to_string());
                break;
            }
            line.clear();
        }
        // Keep reading, so that the gateway never blocks on a full pipe or writes to a
        // closed one.
        std::thread::spawn(move || stdout.lines().for_each(drop));
        Self {
            child,
            addr: addr.expect("the gateway printed its address"),
        }
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        // Ended already in the tests that signal it; stopped here in the others.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
