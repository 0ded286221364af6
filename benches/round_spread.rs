//! How far apart a warmer round's pings reach Lambda, against the hold each asks for.
//!
//! `cargo bench --bench round_spread [-- ROUNDS]`
//!
//! A round's pings must overlap at Lambda to reach distinct environments, so each asks its
//! handler to hold (`policy::round_hold`: `ROUND_HOLD` and what the round's size adds).
//! This sends rounds of 8, 32 and 64 invocations the
//! way the gateway's warmer does (one task, all at once, through `LambdaClient` and
//! aws-sdk-lambda) to a stand-in for Lambda on loopback that notes when each arrives and
//! answers after the hold, and prints each round's spread (last arrival less first): on new
//! connections (the first round of a size) and on pooled ones. Loopback leaves out the
//! network's own jitter and TLS handshakes; it measures what the gateway's side adds.
//!
//! Then the same rounds against the emulator, at holds from none to 25 ms, each
//! answer naming its environment: how many rounds reached a distinct environment per ping,
//! as the gateway's round check (`policy::round::RoundCheck`) judges them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::routing::post;
use bytes::Bytes;
use futures::future::join_all;
use parking_lot::Mutex;
use warmgate::clock::TokioClock;
use warmgate::emulator::Emulator;
use warmgate::gateway::warmer::ping_client_context;
use warmgate::lambda::{InvocationType, InvokeRequest, Invoker, LambdaClient, TraceContext};
use warmgate::platform::PlatformSpec;
use warmgate::policy::round::{environment_named, Reached, RoundCheck};
use warmgate::policy::{round_hold, ROUND_HOLD};

fn main() {
    let rounds: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(5);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(rounds.max(2)));
    runtime.block_on(reach(rounds.max(2)));
}

async fn run(rounds: usize) {
    let arrivals: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let noted = arrivals.clone();
    let app = axum::Router::new().route(
        "/2015-03-31/functions/{name}/invocations",
        post(move || {
            let noted = noted.clone();
            async move {
                noted.lock().push(Instant::now());
                tokio::time::sleep(Duration::from_millis(25)).await;
                ([("x-amz-executed-version", "$LATEST")], "{}")
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    println!("spread of a round's arrivals (ms), against the hold a round of its size asks for\n");
    println!(
        "| pings | hold | new connections | pooled: median | pooled: worst | within the hold |"
    );
    println!("| ---: | ---: | ---: | ---: | ---: | ---: |");
    for size in [8usize, 32, 64] {
        // A client of its own per size, so that its first round opens its connections.
        let client = LambdaClient::for_endpoint(&url, "us-east-1");
        let mut spreads = Vec::with_capacity(rounds);
        for _ in 0..rounds {
            arrivals.lock().clear();
            let round = (0..size).map(|_| client.invoke(ping()));
            for result in join_all(round).await {
                result.expect("the stand-in answers");
            }
            let seen = std::mem::take(&mut *arrivals.lock());
            assert_eq!(seen.len(), size, "every ping arrived");
            let first = seen.iter().min().unwrap();
            let last = seen.iter().max().unwrap();
            spreads.push(last.duration_since(*first));
            // Rounds are minutes apart; a pause lets the pool settle.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let cold = spreads[0];
        let mut pooled: Vec<Duration> = spreads[1..].to_vec();
        pooled.sort();
        let hold = round_hold(ROUND_HOLD, size as u32);
        let within = spreads.iter().filter(|s| **s < hold).count();
        println!(
            "| {size} | {} ms | {:.2} | {:.2} | {:.2} | {within} of {} |",
            hold.as_millis(),
            ms(cold),
            ms(pooled[pooled.len() / 2]),
            ms(*pooled.last().unwrap()),
            spreads.len()
        );
    }
}

/// One function with a short init, so that a pool is made in moments; its handler answers a
/// ping at once unless the ping asks for a hold.
const EMULATOR: &str = r#"
[settings.ping]
hold_ms = 0

[[function]]
name = "model"
memory_mb = 512
init_ms = 20
duration_ms = 5
"#;

/// Rounds against the emulator at each hold: how many reached a distinct environment per
/// ping. A pool as deep as the round is made first (a round held long enough that its pings
/// start one environment each).
async fn reach(rounds: usize) {
    let spec = PlatformSpec::from_toml(EMULATOR).expect("a valid emulator spec");
    let emulator = Emulator::new(spec, Arc::new(TokioClock::new()))
        .bind("127.0.0.1:0".parse().unwrap())
        .await
        .expect("the emulator binds");
    let client = LambdaClient::for_endpoint(&emulator.endpoint_url(), "us-east-1");
    println!("\nrounds against the emulator: rounds that reached a distinct environment per ping, and the environments reached (mean)\n");
    println!("| pings (the round's hold) | hold 0 ms | hold 1 ms | hold 5 ms | the round's hold | hold 25 ms |");
    println!("| ---: | ---: | ---: | ---: | ---: | ---: |");
    for size in [8usize, 32, 64] {
        send_round(&client, size, Some(Duration::from_millis(500))).await;
        let mut cells = Vec::new();
        for hold in [
            Duration::ZERO,
            Duration::from_millis(1),
            Duration::from_millis(5),
            round_hold(ROUND_HOLD, size as u32),
            Duration::from_millis(25),
        ] {
            let (mut reached, mut environments) = (0, 0);
            for _ in 0..rounds {
                let check = send_round(&client, size, Some(hold)).await;
                reached += usize::from(check.judged() && check.repeated() == 0);
                environments += check.distinct;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            cells.push(format!(
                "{reached} of {rounds} ({:.1})",
                f64::from(environments) / rounds as f64
            ));
        }
        println!(
            "| {size} ({} ms) | {} |",
            round_hold(ROUND_HOLD, size as u32).as_millis(),
            cells.join(" | ")
        );
    }
    emulator.shutdown().await.expect("the emulator stops");
}

/// Sends a round of `size` pings at once, each asking for `hold`, and checks the
/// environments their answers name.
async fn send_round(client: &LambdaClient, size: usize, hold: Option<Duration>) -> RoundCheck {
    let context = ping_client_context(hold);
    let round = (0..size).map(|_| {
        client.invoke(InvokeRequest {
            client_context: Some(context.clone()),
            ..ping()
        })
    });
    let answers: Vec<Option<String>> = join_all(round)
        .await
        .into_iter()
        .map(|result| environment_named(&result.expect("the emulator answers").payload))
        .collect();
    RoundCheck::of(answers.iter().map(|a| match a {
        Some(environment) => Reached::Environment(environment),
        None => Reached::Unnamed,
    }))
}

fn ping() -> InvokeRequest {
    InvokeRequest {
        function_name: "model".into(),
        qualifier: None,
        payload: Bytes::from_static(b"{\"warmgate-ping\":true}"),
        client_context: None,
        invocation_type: InvocationType::RequestResponse,
        timeout: Duration::from_secs(10),
        trace: TraceContext::default(),
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
