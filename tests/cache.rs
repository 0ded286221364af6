//! The inference cache's local tier and coalescing through the gateway, in paused time,
//! against the emulator's ground truth (its count of invocations). The shared tier, with a
//! real redis-server, is `cache_redis.rs`.

mod common;

use std::time::Duration;

use common::cache::{call, invocations, start};

#[tokio::test(start_paused = true)]
async fn a_repeated_payload_hits_whatever_its_key_order() {
    let stack = start("live", None).await;
    let first = call(
        &stack,
        "model",
        r#"{"prompt":"hi","params":{"k":5,"t":0},"request_id":"a"}"#,
        None,
    )
    .await;
    assert_eq!(
        (first.status, first.cache.as_str(), first.cold.as_str()),
        (200, "miss", "true")
    );

    // Key order, whitespace and the ignored request id do not matter.
    let again = call(
        &stack,
        "model",
        "{ \"request_id\":\"b\", \"params\":{\"t\":0,\"k\":5},\n\"prompt\":\"hi\" }",
        None,
    )
    .await;
    assert_eq!(
        (again.status, again.cache.as_str(), again.cold.as_str()),
        (200, "hit", "false")
    );
    assert_eq!(again.body, first.body, "the stored answer, byte for byte");
    assert!(
        again.timing.contains("cache;dur=") && again.timing.contains("lookup: local"),
        "{}",
        again.timing
    );
    assert!(
        !again.timing.contains("upstream"),
        "a hit never reached Lambda: {}",
        again.timing
    );
    assert_eq!(invocations(&stack, "model"), 1);

    // Another prompt is another answer.
    let other = call(
        &stack,
        "model",
        r#"{"prompt":"ho","params":{"k":5,"t":0}}"#,
        None,
    )
    .await;
    assert_eq!(other.cache, "miss");
    assert_ne!(other.body, first.body);
    assert_eq!(invocations(&stack, "model"), 2);
}

#[tokio::test(start_paused = true)]
async fn cache_control_is_honoured() {
    let stack = start("live", None).await;
    let body = r#"{"prompt":"hi"}"#;
    // no-store: neither read nor kept.
    assert_eq!(
        call(&stack, "model", body, Some("no-store")).await.cache,
        "bypass"
    );
    assert_eq!(call(&stack, "model", body, None).await.cache, "miss");
    assert_eq!(invocations(&stack, "model"), 2);
    // no-cache: a fresh answer, which is then stored.
    assert_eq!(
        call(&stack, "model", body, Some("no-cache")).await.cache,
        "bypass"
    );
    assert_eq!(invocations(&stack, "model"), 3);
    assert_eq!(call(&stack, "model", body, None).await.cache, "hit");
    assert_eq!(invocations(&stack, "model"), 3);
}

#[tokio::test(start_paused = true)]
async fn an_entry_expires_after_its_ttl() {
    let stack = start("live", None).await;
    let body = r#"{"prompt":"hi"}"#;
    assert_eq!(call(&stack, "model", body, None).await.cache, "miss");
    tokio::time::sleep(Duration::from_secs(599)).await;
    assert_eq!(call(&stack, "model", body, None).await.cache, "hit");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        call(&stack, "model", body, None).await.cache,
        "miss",
        "past ttl_s = 600"
    );
    assert_eq!(invocations(&stack, "model"), 2);
}

#[tokio::test(start_paused = true)]
async fn errors_are_never_cached() {
    let stack = start("live", None).await;
    for _ in 0..3 {
        let answer = call(&stack, "flaky", r#"{"x":1}"#, None).await;
        assert_eq!((answer.status, answer.cache.as_str()), (502, "miss"));
        assert!(answer.body.contains("function_error"), "{}", answer.body);
    }
    assert_eq!(invocations(&stack, "flaky"), 3);
}

/// 100 identical requests at once: one invocation at the emulator, every caller its answer.
async fn hundred_at_once(function: &str, expect_led: &str) {
    let stack = std::sync::Arc::new(start("live", None).await);
    let calls: Vec<_> = (0..100)
        .map(|_| {
            let stack = stack.clone();
            let function = function.to_string();
            tokio::spawn(async move { call(&stack, &function, r#"{"prompt":"same"}"#, None).await })
        })
        .collect();
    let mut answers = Vec::new();
    for call in calls {
        answers.push(call.await.unwrap());
    }
    assert!(answers
        .iter()
        .all(|a| a.status == 200 && a.body == answers[0].body));
    let led = answers.iter().filter(|a| a.cache == expect_led).count();
    let coalesced = answers.iter().filter(|a| a.cache == "coalesced").count();
    assert_eq!((led, coalesced), (1, 99));
    assert_eq!(
        invocations(&stack, "model"),
        1,
        "the emulator's ground truth"
    );
    let truth = stack.emulator.emulator().snapshot();
    assert_eq!(
        truth.function("model").unwrap().totals().cold_starts,
        1,
        "one cold start, not a hundred"
    );
}

#[tokio::test(start_paused = true)]
async fn a_hundred_identical_requests_cause_one_invocation() {
    hundred_at_once("model", "miss").await;
}

#[tokio::test(start_paused = true)]
async fn a_function_without_a_cache_coalesces_too() {
    hundred_at_once("shared", "miss").await;
    // Without a cache, the next request after the flight invokes again.
    let stack = start("live", None).await;
    assert_eq!(call(&stack, "shared", "{}", None).await.cache, "miss");
    assert_eq!(call(&stack, "shared", "{}", None).await.cache, "miss");
    assert_eq!(invocations(&stack, "model"), 2);
}

#[tokio::test(start_paused = true)]
async fn a_failure_reaches_every_waiter() {
    let stack = std::sync::Arc::new(start("live", None).await);
    let calls: Vec<_> = (0..10)
        .map(|_| {
            let stack = stack.clone();
            tokio::spawn(async move { call(&stack, "flaky", r#"{"x":1}"#, None).await })
        })
        .collect();
    for call in calls {
        let answer = call.await.unwrap();
        assert_eq!(answer.status, 502);
        assert!(answer.body.contains("function_error"));
    }
    assert_eq!(invocations(&stack, "flaky"), 1);
}

#[tokio::test(start_paused = true)]
async fn a_waiter_that_goes_away_cancels_no_one() {
    let stack = std::sync::Arc::new(start("live", None).await);
    let first = {
        let stack = stack.clone();
        tokio::spawn(async move { call(&stack, "model", r#"{"prompt":"p"}"#, None).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let second = {
        let stack = stack.clone();
        tokio::spawn(async move { call(&stack, "model", r#"{"prompt":"p"}"#, None).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The first caller leaves during the 2 s cold start: its connection is dropped.
    first.abort();
    let answer = second.await.unwrap();
    assert_eq!((answer.status, answer.cache.as_str()), (200, "coalesced"));
    assert_eq!(invocations(&stack, "model"), 1);
    // And the answer was stored for the next caller.
    assert_eq!(
        call(&stack, "model", r#"{"prompt":"p"}"#, None).await.cache,
        "hit"
    );
}

#[tokio::test(start_paused = true)]
async fn a_deployment_between_refreshes_is_never_cached_under_the_old_code() {
    let stack = start("live", None).await;
    let before = call(&stack, "model", r#"{"prompt":"hi"}"#, None).await;
    assert_eq!(before.cache, "miss");
    // A deployment: `live` now points at version 2 (other code), between two refreshes.
    stack
        .emulator
        .emulator()
        .with_platform(|platform, _| platform.update_alias("model", "live", "2"))
        .unwrap();
    // The gateway still keys by the old code: the old answer may be served until it learns
    // of the deployment, but nothing new version 2 computes is kept under the old code...
    let fresh = call(&stack, "model", r#"{"prompt":"other"}"#, None).await;
    assert_eq!(fresh.cache, "miss");
    // ...and that answer made it resolve the targets again, at once.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let after = call(&stack, "model", r#"{"prompt":"hi"}"#, None).await;
    assert_eq!(after.cache, "miss", "the new code's key");
    assert_ne!(after.body, before.body, "the new code answers otherwise");
    let again = call(&stack, "model", r#"{"prompt":"other"}"#, None).await;
    assert_eq!(
        again.cache, "miss",
        "the answer version 2 gave under the old key was not kept"
    );
    assert_eq!(
        call(&stack, "model", r#"{"prompt":"other"}"#, None)
            .await
            .cache,
        "hit"
    );
}
