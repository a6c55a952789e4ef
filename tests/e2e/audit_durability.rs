//! An audit event is as durable as the change it records (issue 20, item 4): 32 clients write
//! config entries into the real binary, which is SIGKILLed mid-stream; after a restart every
//! acknowledged write is there and so is its `config.upsert` audit record (before, the audit
//! trail went through the batched log writer and a kill lost the last batch).

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{ADMIN_KEY, Engine, ServerProcess, TestDb, config_toml};
use crate::on_both_engines;

/// Every audit record's target for `source`, all pages.
async fn audited_targets(client: &reqwest::Client, server: &ServerProcess) -> HashSet<String> {
    let mut targets = HashSet::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = server.url("/system/logs?category=audit&source=system_config&limit=1000");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let page: Value = client
            .get(url)
            .header("x-api-key", ADMIN_KEY)
            .send()
            .await
            .expect("logs")
            .json()
            .await
            .expect("JSON");
        for item in page["items"].as_array().expect("items") {
            if let Some(t) = item["context"]["target"].as_str() {
                targets.insert(t.to_string());
            }
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => return targets,
        }
    }
}

async fn killed_mid_writes(engine: Engine) {
    let Some(db) = TestDb::new(engine).await else {
        return;
    };
    let text = config_toml(&db, &["api_clients", "system_config", "system_log"])
        .admin_key(ADMIN_KEY)
        .to_toml();
    let server = ServerProcess::start(&db, &text);
    let client = reqwest::Client::new();
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = tokio::task::JoinSet::new();
    for w in 0..32 {
        let (client, url, stop) = (
            client.clone(),
            server.url("/system/config"),
            Arc::clone(&stop),
        );
        writers.spawn(async move {
            let mut acknowledged = Vec::new();
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let key = format!("w{w}.n{n}");
                n += 1;
                let sent = client
                    .post(&url)
                    .header("x-api-key", ADMIN_KEY)
                    .json(&json!({"key": key, "value": "v"}))
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status().is_success() => acknowledged.push(key),
                    Ok(_) => {}
                    // the server is gone
                    Err(_) => break,
                }
            }
            acknowledged
        });
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.kill();
    stop.store(true, Ordering::Relaxed);
    let acknowledged: Vec<String> = writers.join_all().await.into_iter().flatten().collect();
    assert!(
        acknowledged.len() > 100,
        "only {} writes",
        acknowledged.len()
    );

    let server = ServerProcess::start(&db, &text);
    let audited = audited_targets(&client, &server).await;
    let mut missing_entries = 0;
    let missing_audit: Vec<&String> = acknowledged
        .iter()
        .filter(|k| !audited.contains(&format!("system_config/{k}")))
        .collect();
    for key in acknowledged.iter().step_by(7) {
        let status = client
            .get(server.url(&format!("/system/config/{key}")))
            .header("x-api-key", ADMIN_KEY)
            .send()
            .await
            .expect("read")
            .status();
        missing_entries += usize::from(status != 200);
    }
    eprintln!(
        "{} acknowledged writes, {} audit records",
        acknowledged.len(),
        audited.len()
    );
    assert_eq!(missing_entries, 0, "acknowledged writes lost");
    assert!(
        missing_audit.is_empty(),
        "{} of {} acknowledged writes have no audit record: {:?}",
        missing_audit.len(),
        acknowledged.len(),
        &missing_audit[..missing_audit.len().min(5)]
    );
    server.kill();
    db.drop_database().await;
}
on_both_engines!(
    every_acknowledged_write_keeps_its_audit_record_through_a_kill,
    killed_mid_writes
);
