//! The audit log's durability (`[audit] durability = "sync"`, the default): no client gets
//! a 2xx answer whose decision is not in the audit log, exactly once, in a chain that
//! verifies; through a `kill -9` of the gateway under load, and through PostgreSQL
//! stopped (SIGSTOP) for 30 seconds under load.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{ECHOED_CONTEXT, Gateway};
use gatehouse_pgcluster::PgCluster;
use reqwest::Method;

/// Clients sending reads and deletes (allowed, to the recording upstream) until stopped.
struct Load {
    stop: Arc<AtomicBool>,
    /// 2xx answers so far, by all clients.
    served: Arc<AtomicUsize>,
    clients: Vec<JoinHandle<Answers>>,
}

/// What one client got: the decision ids of its 2xx answers, and how many of each status.
#[derive(Default)]
struct Answers {
    answered: Vec<String>,
    statuses: HashMap<u16, usize>,
}

impl Load {
    fn start(gw: &Gateway, clients: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let served = Arc::new(AtomicUsize::new(0));
        let token = gw.token("acme-ed", "acme");
        let clients = (0..clients)
            .map(|n| {
                let (stop, served, token) = (stop.clone(), served.clone(), token.clone());
                let (base, verifier) = (gw.base.clone(), gw.verifier.clone());
                std::thread::spawn(move || {
                    let client = reqwest::blocking::Client::builder()
                        .timeout(Duration::from_secs(10))
                        .pool_max_idle_per_host(0)
                        .build()
                        .unwrap();
                    let mut answers = Answers::default();
                    let mut i = n;
                    while !stop.load(Ordering::Relaxed) {
                        i += 1;
                        let method = if i % 3 == 0 {
                            reqwest::Method::DELETE
                        } else {
                            reqwest::Method::GET
                        };
                        let sent = client
                            .request(method, format!("{base}/documents/acme-plan"))
                            .bearer_auth(&token)
                            .send();
                        let Ok(response) = sent else {
                            // The gateway is gone or stuck: no answer, nothing to prove.
                            std::thread::sleep(Duration::from_millis(20));
                            continue;
                        };
                        let status = response.status().as_u16();
                        *answers.statuses.entry(status).or_default() += 1;
                        if response.status().is_success() {
                            let context = response.headers()[ECHOED_CONTEXT].to_str().unwrap();
                            let context = verifier.verify(context).unwrap();
                            answers.answered.push(context.decision_id);
                            served.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    answers
                })
            })
            .collect();
        Self {
            stop,
            served,
            clients,
        }
    }

    /// Stops the clients; what they got, together.
    fn finish(self) -> Answers {
        self.stop.store(true, Ordering::Relaxed);
        let mut all = Answers::default();
        for client in self.clients {
            let answers = client.join().unwrap();
            all.answered.extend(answers.answered);
            for (status, n) in answers.statuses {
                *all.statuses.entry(status).or_default() += n;
            }
        }
        all
    }
}

/// Every answered decision is in acme's log exactly once, and the chain verifies.
fn assert_all_audited_once(gw: &Gateway, answers: &Answers) {
    let answered = &answers.answered;
    let records = gw.audit_until("acme", |records| {
        answered
            .iter()
            .all(|id| records.iter().any(|r| r.record.id == *id))
    });
    let mut times: HashMap<&str, usize> = HashMap::new();
    for record in &records {
        *times.entry(record.record.id.as_str()).or_default() += 1;
    }
    let missing: Vec<&String> = answered
        .iter()
        .filter(|id| !times.contains_key(id.as_str()))
        .collect();
    let log = gw.log();
    let log_tail: Vec<&str> = log.lines().rev().take(40).collect();
    assert!(
        missing.is_empty(),
        "{} of {} answered requests have no audit record, among them {:?}\nthe log's last lines:\n{}",
        missing.len(),
        answered.len(),
        &missing[..missing.len().min(5)],
        log_tail.join("\n")
    );
    let twice: Vec<(&&str, &usize)> = times.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "recorded more than once: {twice:?}");
    assert_eq!(gw.verify("acme").broken, None);
}

#[test]
fn every_answered_request_survives_a_kill_9_in_the_audit_log() {
    let mut gw = Gateway::start();
    let load = Load::start(&gw, 8);
    for _ in 0..3 {
        // A moment in the run that no one chose.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        std::thread::sleep(Duration::from_millis(300 + u64::from(nanos % 700)));
        gw.kill_and_restart();
    }
    std::thread::sleep(Duration::from_millis(300));
    let answers = load.finish();
    assert!(
        answers.answered.len() >= 20,
        "the load was served: {:?}",
        answers.statuses
    );
    assert_all_audited_once(&gw, &answers);
}

#[test]
fn every_answered_request_is_audited_after_postgres_stops_for_30_seconds() {
    let gw = Gateway::start();
    let load = Load::start(&gw, 4);
    std::thread::sleep(Duration::from_millis(500));
    let postgres = gw.postgres.as_ref().unwrap();
    let paused = Paused::pause(postgres);
    let before = load.served.load(Ordering::Relaxed);
    std::thread::sleep(Duration::from_secs(30));
    let during = load.served.load(Ordering::Relaxed) - before;
    drop(paused);
    std::thread::sleep(Duration::from_secs(2));
    let after = load.served.load(Ordering::Relaxed) - before - during;
    let answers = load.finish();
    eprintln!("answered while PostgreSQL was stopped: {during}; after: {after}");
    assert!(
        after > 0,
        "the load went on after PostgreSQL came back: {:?}",
        answers.statuses
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline && gw.audit("acme").len() < answers.answered.len() {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_all_audited_once(&gw, &answers);
}

/// Every process of a cluster stopped with SIGSTOP, until dropped (SIGCONT).
struct Paused(Vec<i32>);

impl Paused {
    fn pause(cluster: &PgCluster) -> Self {
        let pid_file = std::fs::read_to_string(cluster.data_dir().join("postmaster.pid")).unwrap();
        let postmaster: i32 = pid_file.lines().next().unwrap().trim().parse().unwrap();
        let mut pids = vec![postmaster];
        pids.extend(children(postmaster));
        signal("-STOP", &pids);
        Self(pids)
    }
}

impl Drop for Paused {
    fn drop(&mut self) {
        signal("-CONT", &self.0);
    }
}

fn signal(signal: &str, pids: &[i32]) {
    let status = std::process::Command::new("kill")
        .arg(signal)
        .args(pids.iter().map(ToString::to_string))
        .status()
        .unwrap();
    assert!(status.success());
}

/// The processes whose parent is `parent`, from /proc.
fn children(parent: i32) -> Vec<i32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ppid …`: comm may hold spaces, so read after its ')'.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|ppid| ppid.parse::<i32>().ok());
        if ppid == Some(parent) {
            pids.push(pid);
        }
    }
    pids
}

#[test]
fn with_a_spool_that_cannot_be_written_nothing_is_answered_or_forwarded() {
    let mut gw = Gateway::start();
    gw.kill();
    // The spool on a full disk: /dev/full takes every open and fails every write.
    let spool = gw.dir.path().join("audit.spool");
    let _ = std::fs::remove_file(&spool);
    std::os::unix::fs::symlink("/dev/full", &spool).unwrap();
    gw.restart();
    gw.upstream.take();

    let ed = gw.token("acme-ed", "acme");
    let (read, body) = gw.get("/documents/acme-plan", &ed);
    assert_eq!(
        (read, body["error"]["code"].as_str()),
        (503, Some("audit_unavailable")),
        "a read is not answered: {body}"
    );
    let (delete, body) = gw.call(Method::DELETE, "/documents/acme-plan", &ed, &[]);
    assert_eq!(
        (delete, body["error"]["code"].as_str()),
        (503, Some("audit_unavailable"))
    );
    let vera = gw.token("acme-vera", "acme");
    let (deny, body) = gw.call(Method::DELETE, "/documents/acme-plan", &vera, &[]);
    assert_eq!(
        (deny, body["error"]["code"].as_str()),
        (503, Some("audit_unavailable")),
        "not even a deny is answered without its record"
    );
    let evaluation = serde_json::json!({
        "subject": {"type": "User", "id": "acme-ed"},
        "action": {"name": "document:read"},
        "resource": {"type": "Document", "id": "acme-plan"}
    });
    let bearer = format!("Bearer {ed}");
    let headers = [("authorization", bearer.as_str())];
    let (api, body) = gw.call_json(Method::POST, "/access/v1/evaluation", &headers, &evaluation);
    assert_eq!(
        (api, body["error"]["code"].as_str()),
        (503, Some("audit_unavailable"))
    );

    let forwarded: Vec<String> = gw
        .upstream
        .take()
        .into_iter()
        .map(|r| r.request_line)
        .collect();
    assert!(
        forwarded.iter().all(|line| line.starts_with("GET ")),
        "a change is never forwarded before its record is durable: {forwarded:?}"
    );
}

#[test]
fn a_database_url_that_cannot_be_used_stops_the_start() {
    let mut gw = Gateway::start();
    gw.kill();
    let config = std::fs::read_to_string(gw.config_path()).unwrap();
    let broken = config.replace("gatehouse_app:", "gatehouse_app:wrong");
    assert_ne!(
        broken, config,
        "the application role's URL names its password"
    );
    std::fs::write(gw.config_path(), broken).unwrap();
    let started = std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .arg("--config")
        .arg(gw.config_path())
        .env("TEST_HS256_SECRET", common::HS256_SECRET)
        .output()
        .unwrap();
    assert!(!started.status.success(), "it must not serve unaudited");
    let said = String::from_utf8_lossy(&started.stderr);
    assert!(said.contains("application role"), "{said}");
}
