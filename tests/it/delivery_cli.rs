//! `herald deliveries list|show|redeliver` against a running instance's SQLite file: the
//! CLI re-queues, the server's workers pick the work up on their next poll.

use serde_json::json;

use crate::cli::{herald as run, stdout};
use crate::support::hooks::{id, rig};
use crate::support::{Backend, WAIT};

fn herald(dir: &std::path::Path, args: &[&str]) -> String {
    stdout(&run(dir, args))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_show_and_bulk_redeliver_from_the_command_line() {
    let Some(rig) = rig(Backend::Sqlite, &[]).await else {
        return;
    };
    let dir = rig.app.settings.data_dir.clone();
    let hook = rig.webhook("standard", &["Project:Created"], json!({})).await;
    for k in ["CA", "CB"] {
        rig.project(k).await;
    }
    rig.rx.wait_for(2, WAIT).await;
    let list = rig.wait_deliveries(&hook, 2).await;
    for d in &list {
        rig.settled(&id(d)).await;
    }
    let webhook = id(&hook);
    let out = herald(
        &dir,
        &["deliveries", "list", "--tenant", "default", "--webhook", &webhook],
    );
    assert!(out.contains(&id(&list[0])) && out.contains("succeeded"), "{out}");
    let out = herald(
        &dir,
        &["deliveries", "show", "--tenant", "default", &id(&list[0])],
    );
    assert!(
        out.contains("HTTP 200") && out.contains("\"type\":\"Project:Created\""),
        "{out}"
    );
    // Bulk replay of a webhook's succeeded deliveries (the raw output, to see refusals).
    let redeliver_all = |webhook: &str| {
        run(
            &dir,
            &[
                "deliveries",
                "redeliver",
                "--tenant",
                "default",
                "--webhook",
                webhook,
                "--status",
                "succeeded",
            ],
        )
    };
    let out = stdout(&redeliver_all(&webhook));
    assert!(out.contains("Queued 2 deliveries"), "{out}");
    let reqs = rig.rx.wait_for(4, WAIT).await;
    let again: Vec<_> = reqs[2..]
        .iter()
        .map(|r| r.header("webhook-id").unwrap().to_owned())
        .collect();
    assert!(
        again.contains(&id(&list[0])) && again.contains(&id(&list[1])),
        "same ids redelivered"
    );
    rig.settled(&id(&list[1])).await;
    let out = herald(
        &dir,
        &["deliveries", "redeliver", "--tenant", "default", &id(&list[1])],
    );
    assert!(out.contains("Queued a new attempt"), "{out}");
    rig.rx.wait_for(5, WAIT).await;
    rig.settled(&id(&list[0])).await;

    // A mistyped webhook is an error, not "Queued 0"; once the webhook is deleted, neither
    // its finished deliveries nor one of them can be queued where no claim takes them.
    let o = redeliver_all("00000000-0000-0000-0000-000000000000");
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("no webhook"));
    let r = rig
        .app
        .call("DELETE", &format!("/@default/v1/Webhooks/{webhook}"), None)
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert!(!redeliver_all(&webhook).status.success());
    let o = run(
        &dir,
        &["deliveries", "redeliver", "--tenant", "default", &id(&list[0])],
    );
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("was deleted"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}
