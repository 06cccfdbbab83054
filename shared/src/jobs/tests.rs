use super::*;

#[test]
fn a_queue_waits_in_the_list_the_autoscalers_read() {
    // deploy/k8s scales each worker pool on the length of this list (KEDA's Redis
    // trigger, checked by deploy/check-deploy.py): a new key format must change both.
    let config = crate::Config::from_lookup(|_| None).unwrap();
    for queue in Queue::ALL {
        assert_eq!(
            queue_config(&config, queue).active_jobs_list(),
            format!("wp.{}:active", queue.name())
        );
    }
}

#[test]
fn a_ulid_tells_when_it_was_made() {
    // 01ARYZ6S41 is 1469918176385 ms (the ULID specification's example).
    assert_eq!(
        ulid_millis("01ARYZ6S41TSV4RRFFQ69G5FAV"),
        Some(1_469_918_176_385)
    );
    assert_eq!(
        ulid_millis("01aryz6s41tsv4rrffq69g5fav"),
        Some(1_469_918_176_385)
    );
    assert_eq!(ulid_millis("not-a-ulid"), None);
    assert_eq!(
        ulid_millis("01ARYZ6S41TSV4RRFFQ69G5FA!"),
        Some(1_469_918_176_385)
    );
    assert_eq!(ulid_millis("0UARZ3NDEKTSV4RRFFQ69G5FAV"), None);
}

#[test]
fn queue_names_round_trip() {
    for q in Queue::ALL {
        assert_eq!(q.name().parse::<Queue>(), Ok(q));
    }
    assert!("nope".parse::<Queue>().unwrap_err().contains("email"));
}

#[test]
fn the_analytics_queue_reads_single_events_and_batches() {
    let e = AnalyticsEvent::new("video.like", None, None, serde_json::json!({}));
    // A bare event, as every producer before batches pushed it (and the outbox holds).
    let one: AnalyticsJob = serde_json::from_value(serde_json::to_value(&e).unwrap()).unwrap();
    assert_eq!(one, AnalyticsJob::One(e.clone()));
    let batch = AnalyticsJob::Batch {
        events: vec![e.clone(), e],
    };
    let back: AnalyticsJob = serde_json::from_value(serde_json::to_value(&batch).unwrap()).unwrap();
    assert_eq!(back, batch);
}

#[test]
fn system_job_wire_format_is_tagged() {
    let v = serde_json::to_value(SystemJob::Noop { seq: 3 }).unwrap();
    assert_eq!(v, serde_json::json!({"kind": "noop", "seq": 3}));
}
