//! Hostile clients against `jobline-local serve` as a process, over real
//! TCP, against the emulator: malformed and oversized bodies, thousands of
//! connections, a process out of file descriptors, clients that trickle
//! their headers. Each is refused or outlasted, and afterwards the server is
//! up and a submit and status round trip works.

use jobline_core::limits::PAYLOAD_BUDGET_BYTES;
use jobline_core::{JobId, JobState, ReadStore};
use jobline_tests::TestEnv;
use jobline_tests::process::Runner;
use std::io::Write;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Past the test harness's capture, so the figures show.
fn report(line: &str) {
    drop(writeln!(std::io::stderr(), "{line}"));
}

/// A job submitted over HTTP reaches `succeeded`, as its status URL shows.
async fn round_trip(addr: SocketAddr) {
    let (status, body) =
        jobline_tests::http::post_jobs(addr, br#"{"type": "primes", "payload": {"upTo": 100}}"#)
            .await;
    assert_eq!(status, 202, "{body}");
    let path = format!("/jobs/{}", body["jobId"].as_str().unwrap());
    let started = Instant::now();
    loop {
        let (status, view) = jobline_tests::http::get(addr, &path).await;
        assert_eq!(status, 200, "{view}");
        if view["status"] == "succeeded" {
            assert_eq!(view["result"]["count"], 25, "{view}");
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "{view}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The answer to `body` posted to `/jobs`: its status and error code.
async fn refused(addr: SocketAddr, body: &[u8]) -> (u16, String) {
    let (status, answer) = jobline_tests::http::post_jobs(addr, body).await;
    let code = answer["error"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    (status, code)
}

/// `depth` nested arrays inside a sleep job's payload.
fn nested(depth: usize) -> Vec<u8> {
    format!(
        r#"{{"type": "sleep", "payload": {{"seconds": 0, "deep": {}{}}}}}"#,
        "[".repeat(depth),
        "]".repeat(depth)
    )
    .into_bytes()
}

#[tokio::test]
async fn malformed_and_oversized_bodies_are_refused_and_the_server_lives() {
    jobline_tests::require_emulator!();
    let env = TestEnv::new().await;
    let mut runner = Runner::start(env!("CARGO_BIN_EXE_jobline-local"), &env, &[], &[], None);
    let addr = runner.addr;

    let mut invalid_utf8 = br#"{"type": "sleep", "payload": {"seconds": 0, "s": ""#.to_vec();
    invalid_utf8.extend_from_slice(b"\xff\xfe\xc3\x28");
    invalid_utf8.extend_from_slice(br#""}}"#);
    let deep_objects = format!(
        r#"{{"type": "sleep", "payload": {}0{}}}"#,
        r#"{"a": "#.repeat(20_000),
        "}".repeat(20_000)
    );
    let two_hundred_digits = format!(
        r#"{{"type": "sleep", "payload": {{"seconds": {}}}}}"#,
        "9".repeat(200)
    );
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("invalid UTF-8", invalid_utf8, 400, "invalid_json"),
        (
            "bare bytes",
            b"\x00\x01\x02\xff".to_vec(),
            400,
            "invalid_json",
        ),
        ("10,000 nested arrays", nested(10_000), 400, "invalid_json"),
        (
            "100,000 nested arrays",
            nested(100_000),
            400,
            "invalid_json",
        ),
        (
            "20,000 nested objects",
            deep_objects.into_bytes(),
            400,
            "invalid_json",
        ),
        (
            "1E400",
            br#"{"type": "sleep", "payload": {"seconds": 1E400}}"#.to_vec(),
            422,
            "invalid_request",
        ),
        (
            "a 200-digit integer",
            two_hundred_digits.into_bytes(),
            422,
            "invalid_payload",
        ),
        (
            "-1E400 in a field no type reads",
            br#"{"type": "sleep", "payload": {"seconds": 0, "x": -1E400}}"#.to_vec(),
            422,
            "invalid_request",
        ),
    ];
    for (name, body, status, code) in cases {
        assert_eq!(
            refused(addr, &body).await,
            (status, code.to_owned()),
            "{name}"
        );
        assert!(
            runner.is_running(),
            "{name} ended the server: {}",
            runner.log()
        );
    }

    // 10 MiB, declared: refused unread. Sent in chunks: read, sized, refused.
    let ten_mib = vec![b'x'; 10 * 1024 * 1024];
    assert_eq!(
        refused(addr, &ten_mib).await,
        (413, "payload_too_large".to_owned())
    );
    let mut chunked = b"POST /jobs HTTP/1.1\r\nhost: test\r\ntransfer-encoding: chunked\r\n\
        connection: close\r\n\r\n"
        .to_vec();
    for chunk in ten_mib.chunks(1024 * 1024) {
        chunked.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        chunked.extend_from_slice(chunk);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let (status, body) = jobline_tests::http::exchange(addr, &chunked).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"]["code"], "payload_too_large", "{body}");

    // Not HTTP, or ambiguous HTTP (both framings: request smuggling):
    // refused before any handler runs.
    for (name, request) in [
        ("garbage", &b"GARBAGE\r\n\r\n"[..]),
        (
            "content-length and chunked",
            b"POST /jobs HTTP/1.1\r\nhost: test\r\ntransfer-encoding: chunked\r\n\
              content-length: 5\r\n\r\n0\r\n\r\n",
        ),
    ] {
        let (status, _) = jobline_tests::http::exchange(addr, request).await;
        assert_eq!(status, 400, "{name}");
    }
    // Odd paths are only unknown jobs.
    for path in ["/jobs/%ff%fe", "/jobs/%00", "/jobs/../../etc/passwd"] {
        let (status, body) = jobline_tests::http::get(addr, path).await;
        assert_eq!(status, 404, "{path}: {body}");
    }

    // Header bombs: hyper refuses them before any handler runs.
    let many_headers = format!(
        "GET /jobs/x HTTP/1.1\r\nhost: test\r\n{}connection: close\r\n\r\n",
        "x-h: 1\r\n".repeat(10_000)
    );
    let huge_header = format!(
        "GET /jobs/x HTTP/1.1\r\nhost: test\r\nx-h: {}\r\nconnection: close\r\n\r\n",
        "a".repeat(1024 * 1024)
    );
    for (name, head) in [
        ("10,000 headers", many_headers),
        ("a 1 MiB header", huge_header),
    ] {
        let (status, _) = jobline_tests::http::exchange(addr, head.as_bytes()).await;
        assert_eq!(status, 431, "{name}");
    }

    assert!(runner.is_running(), "{}", runner.log());
    round_trip(addr).await;
    runner.terminate().assert_clean();
    env.cleanup().await;
}

/// A 202'd job's stored item is bounded: serde re-serialises `1E15` (4
/// bytes) as `1000000000000000.0` (18), so a payload within the body limit
/// can grow past the payload budget of the item once stored. Either the API
/// refuses it with a client error, or what it stores fits the budget.
/// (Before the API checked the stored size, 20,000 × `1E15`, a 100,052 byte
/// body, was stored as a 380,019 byte payload.)
#[tokio::test]
async fn a_payload_that_grows_when_stored_is_refused_or_stored_within_its_budget() {
    jobline_tests::require_emulator!();
    let env = TestEnv::new().await;
    let mut runner = Runner::start(env!("CARGO_BIN_EXE_jobline-local"), &env, &[], &[], None);
    // Stored: ~1.4 × and ~4.5 × the budget (over DynamoDB's 400 KB item).
    for numbers in [20_000, 50_000] {
        let body = format!(
            r#"{{"type": "sleep", "payload": {{"seconds": 0, "n": [{}]}}}}"#,
            vec!["1E15"; numbers].join(",")
        );
        assert!(body.len() <= jobline_api::MAX_BODY_BYTES, "{}", body.len());
        let (status, answer) = jobline_tests::http::post_jobs(runner.addr, body.as_bytes()).await;
        report(&format!(
            "{numbers} × 1E15: a {} byte body answered {status} {answer}",
            body.len()
        ));
        if status == 202 {
            let id: JobId = answer["jobId"].as_str().unwrap().parse().unwrap();
            let job = env.store().get(id).await.unwrap().expect("stored");
            let stored = job.payload.to_string().len();
            report(&format!("stored payload: {stored} bytes"));
            assert!(
                stored <= PAYLOAD_BUDGET_BYTES,
                "a {} byte body was accepted and stored as a {stored} byte payload, over the \
                 {PAYLOAD_BUDGET_BYTES} byte budget",
                body.len()
            );
            assert_ne!(job.state, JobState::Failed, "{job:?}");
        } else {
            assert!(
                (400..500).contains(&status),
                "a {} byte body that grows when stored is a client error, not {status} {answer}",
                body.len()
            );
        }
        assert!(runner.is_running(), "{}", runner.log());
    }
    drop(runner);
    env.cleanup().await;
}

#[tokio::test]
async fn thousands_of_idle_connections_and_trickling_clients_are_outlasted() {
    jobline_tests::require_emulator!();
    let env = TestEnv::new().await;
    let mut runner = Runner::start(env!("CARGO_BIN_EXE_jobline-local"), &env, &[], &[], None);
    let addr = runner.addr;

    let mut idle = Vec::new();
    for _ in 0..2_000 {
        match TcpStream::connect(addr).await {
            Ok(stream) => idle.push(stream),
            // This process's own limit of open files (EMFILE): keep some
            // for the clients below.
            Err(error) if error.raw_os_error() == Some(24) => {
                idle.truncate(idle.len().saturating_sub(100));
                break;
            }
            Err(error) => panic!("connect: {error}"),
        }
    }
    assert!(idle.len() >= 500, "only {} connections", idle.len());
    // Trickling clients: one byte of a never-ending head every 200 ms.
    let trickling: Vec<_> = (0..20)
        .map(|_| {
            tokio::spawn(async move {
                let mut stream = TcpStream::connect(addr).await.expect("connect");
                let started = Instant::now();
                let head = b"POST /jobs HTTP/1.1\r\nhost: test\r\nx-slow: ";
                if stream.write_all(head).await.is_err() {
                    return started.elapsed();
                }
                let mut buffer = [0; 1024];
                loop {
                    tokio::select! {
                        read = stream.read(&mut buffer) => match read {
                            Ok(0) | Err(_) => return started.elapsed(),
                            Ok(_) => {}
                        },
                        () = tokio::time::sleep(Duration::from_millis(200)) => {
                            if stream.write_all(b"a").await.is_err() {
                                return started.elapsed();
                            }
                        }
                    }
                    assert!(started.elapsed() < Duration::from_secs(30), "never closed");
                }
            })
        })
        .collect();

    // With all of them open, the server answers.
    round_trip(addr).await;
    assert!(runner.is_running(), "{}", runner.log());

    // The header read timeout (10 s) closes every trickling connection.
    let mut slowest = Duration::ZERO;
    for client in trickling {
        slowest = slowest.max(client.await.unwrap());
    }
    assert!(slowest < Duration::from_secs(13), "{slowest:?}");

    // And idle connections that never sent a byte.
    let mut closed = 0;
    for stream in &mut idle {
        let mut buffer = [0; 16];
        if let Ok(Ok(0) | Err(_)) =
            tokio::time::timeout(Duration::from_millis(1), stream.read(&mut buffer)).await
        {
            closed += 1;
        }
    }
    assert_eq!(
        closed,
        idle.len(),
        "the header read timeout also closes connections that send nothing"
    );
    report(&format!(
        "{} idle connections and 20 trickling clients: the server answered throughout; \
         trickling clients closed after at most {:.1} s; {closed} idle ones closed by then",
        idle.len(),
        slowest.as_secs_f64()
    ));
    drop(idle);
    round_trip(addr).await;
    runner.terminate().assert_clean();
    env.cleanup().await;
}

#[tokio::test]
async fn a_server_out_of_file_descriptors_waits_and_serves_again() {
    jobline_tests::require_emulator!();
    let env = TestEnv::new().await;
    let mut runner = Runner::start(
        env!("CARGO_BIN_EXE_jobline-local"),
        &env,
        &[],
        &[],
        Some(64),
    );
    let addr = runner.addr;

    // Far more connections than the server may open files: it accepts what
    // it can; the rest wait in the listen backlog or time out.
    let mut connecting = tokio::task::JoinSet::new();
    for _ in 0..500 {
        connecting.spawn(tokio::time::timeout(
            Duration::from_secs(1),
            TcpStream::connect(addr),
        ));
    }
    let mut held = Vec::new();
    let mut refused = 0;
    while let Some(connected) = connecting.join_next().await {
        match connected.unwrap() {
            Ok(Ok(stream)) => held.push(stream),
            _ => refused += 1,
        }
    }
    // Let the accept loop run into the limit, more than once.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(runner.is_running(), "{}", runner.log());
    let log = runner.log();
    assert!(
        log.contains("cannot accept connections; pausing"),
        "the server never ran out of descriptors: {log}"
    );
    report(&format!(
        "under `ulimit -n 64`: {} connections open, {refused} not, accept hit the limit \
         {} times; the server kept running",
        held.len(),
        log.matches("cannot accept connections; pausing").count()
    ));

    // Once they close, it serves again.
    drop(held);
    round_trip(addr).await;
    assert!(runner.is_running(), "{}", runner.log());
    runner.terminate().assert_clean();
    env.cleanup().await;
}
