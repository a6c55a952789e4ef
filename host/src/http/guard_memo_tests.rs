//! The guard memo table's unit tests: which requests a memo answers, when it ends, and how a
//! counting memo counts.

use super::*;
use crate::runtime::bindings::Method;
use std::time::Duration;

fn request(ip: &str, principal: Option<&str>) -> Request {
    Request {
        method: Method::Get,
        path: "/x".into(),
        route: String::new(),
        params: vec![],
        query: vec![],
        headers: vec![],
        body: vec![],
        request_id: "r".into(),
        principal: principal.map(|id| Principal {
            id: id.into(),
            name: id.into(),
            roles: vec!["read".into()],
        }),
        client_ip: ip.into(),
    }
}

fn creds(key: &str) -> Vec<(String, String)> {
    vec![("x-api-key".into(), key.into())]
}

fn proceed_as(id: &str) -> Memoized {
    Memoized {
        principal: request("", Some(id)).principal,
        headers: vec![],
    }
}

#[tokio::test]
async fn a_memo_answers_only_requests_equal_in_its_inputs() {
    let cache = Arc::new(Cache::default());
    let stamp = cache.set_stamped("e".into(), vec![], None).unwrap();
    let memos = Memos::new(
        Arc::clone(&cache),
        Arc::new(SharedCounters::local(Arc::clone(&cache))),
    );
    let memo = MemoRequest {
        valid_while: Some(("e".into(), stamp)),
        inputs: vec![MemoInput::Credentials, MemoInput::Principal],
        counters: vec![],
    };
    let req = request("1.1.1.1", None);
    memos.store(memo, &req, &creds("k1"), proceed_as("client:1"));
    let id = |m: Option<Reuse>| match m {
        Some(Reuse::Proceed(m)) => m.principal.map(|p| p.id),
        _ => None,
    };
    assert_eq!(
        id(memos.lookup(&req, &creds("k1")).await).as_deref(),
        Some("client:1")
    );
    let elsewhere = request("2.2.2.2", None);
    assert!(
        memos.lookup(&elsewhere, &creds("k1")).await.is_some(),
        "the address is not an input"
    );
    assert!(
        memos.lookup(&req, &creds("k2")).await.is_none(),
        "another key"
    );
    assert!(memos.lookup(&req, &[]).await.is_none(), "no key");
    let admin = request("1.1.1.1", Some("admin"));
    assert!(
        memos.lookup(&admin, &creds("k1")).await.is_none(),
        "another principal"
    );
}

#[tokio::test]
async fn a_memo_ends_when_its_entry_is_rewritten_deleted_or_lapses() {
    let cache = Arc::new(Cache::default());
    let memos = Memos::new(
        Arc::clone(&cache),
        Arc::new(SharedCounters::local(Arc::clone(&cache))),
    );
    let req = request("1.1.1.1", None);
    let remember = |entry: &str| {
        let stamp = cache
            .set_stamped(entry.into(), vec![], Some(Duration::from_secs(60)))
            .unwrap();
        memos.store(
            MemoRequest {
                valid_while: Some((entry.into(), stamp)),
                inputs: vec![MemoInput::Credentials],
                counters: vec![],
            },
            &req,
            &creds(entry),
            proceed_as(entry),
        );
    };
    remember("deleted");
    assert!(memos.lookup(&req, &creds("deleted")).await.is_some());
    cache.delete("deleted");
    assert!(memos.lookup(&req, &creds("deleted")).await.is_none());
    remember("rewritten");
    assert!(memos.lookup(&req, &creds("rewritten")).await.is_some());
    cache.set("rewritten".into(), vec![], None);
    assert!(memos.lookup(&req, &creds("rewritten")).await.is_none());
    remember("lapsed");
    assert!(memos.lookup(&req, &creds("lapsed")).await.is_some());
    cache.set("lapsed".into(), vec![], Some(Duration::ZERO));
    assert!(memos.lookup(&req, &creds("lapsed")).await.is_none());
}

#[tokio::test]
async fn a_counting_memo_counts_each_reuse_exactly_and_refuses_past_the_limit() {
    let cache = Arc::new(Cache::default());
    let stamp = cache.set_stamped("rules".into(), vec![], None).unwrap();
    let memos = Memos::new(
        Arc::clone(&cache),
        Arc::new(SharedCounters::local(Arc::clone(&cache))),
    );
    let counter = |key: &str, limit| Counted {
        key: key.into(),
        limit,
        window: Duration::from_secs(60),
    };
    let req = request("1.1.1.1", None);
    // the guard itself counted the first request
    cache.incr("rl:a", 1, Duration::from_secs(60)).unwrap();
    cache.incr("rl:b", 1, Duration::from_secs(60)).unwrap();
    memos.store(
        MemoRequest {
            valid_while: Some(("rules".into(), stamp)),
            inputs: vec![MemoInput::ClientIp],
            counters: vec![counter("rl:a", 3), counter("rl:b", 10)],
        },
        &req,
        &[],
        Memoized {
            principal: None,
            headers: vec![("stale".into(), "x".into())],
        },
    );
    let headers = |r: Option<Reuse>| match r {
        Some(Reuse::Proceed(m)) => m.headers,
        other => panic!("expected to proceed, got {other:?}"),
    };
    let h = headers(memos.lookup(&req, &[]).await);
    assert_eq!(
        h[0],
        ("RateLimit-Limit".into(), "3".into()),
        "the tightest counter"
    );
    assert_eq!(h[1], ("RateLimit-Remaining".into(), "1".into()));
    assert_eq!(headers(memos.lookup(&req, &[]).await)[1].1, "0");
    match memos.lookup(&req, &[]).await {
        Some(Reuse::Limited(s)) => assert_eq!((s.limit, s.count), (3, 4)),
        other => panic!("expected the limit, got {other:?}"),
    }
    assert_eq!(
        cache.incr("rl:b", 0, Duration::from_secs(60)).unwrap().0,
        4,
        "every counter counted"
    );
    // a new rule set ends the memo
    cache.set("rules".into(), vec![], None);
    assert!(memos.lookup(&req, &[]).await.is_none());
}

#[test]
fn inputs_are_hashed_unambiguously() {
    let a = request("1.1.1.1", None);
    let joined = vec![("x-api-key".to_string(), "ab".to_string())];
    let split = vec![("x-api-keya".to_string(), "b".to_string())];
    assert_ne!(
        key(&[MemoInput::Credentials], &a, &joined),
        key(&[MemoInput::Credentials], &a, &split)
    );
    assert_ne!(
        key(&[], &a, &joined),
        key(&[MemoInput::ClientIp], &a, &joined)
    );
}
