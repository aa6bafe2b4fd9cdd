//! The change stream's conformance suite: it writes through the table and
//! reads the records back.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use aws_lambda_events::event::dynamodb::StreamViewType;
use serde_json::{json, Map, Value};

use super::table::item;
use super::{eventually, run_id, skip, DEADLINE};
use crate::images::ImageRef;
use crate::ports::{
    Capabilities, ChangeStream, ChangeView, Condition, Item, Key, StreamRecord, Table, TxOp,
};

const SUITE: &str = "stream";

/// A record as the suite compares it: event name, new image, old image.
type Change<'a> = (&'a str, Option<Item>, Option<Item>);

/// Sequence numbers are numeric strings; compare them as numbers.
fn seq_num(r: &StreamRecord) -> u128 {
    let s = r
        .change
        .sequence_number
        .as_deref()
        .expect("record has a sequence number");
    s.parse()
        .unwrap_or_else(|_| panic!("{SUITE}: sequence number {s:?} is not numeric"))
}

fn image(i: &serde_dynamo::Item) -> Option<Item> {
    if i.is_empty() {
        return None;
    }
    Some(
        serde_dynamo::from_item::<_, Map<String, Value>>(i.clone())
            .expect("image converts back to JSON"),
    )
}

/// Reads a shard from `after` to its current end.
async fn read_to_end(
    stream: &dyn ChangeStream,
    shard: &str,
    after: Option<String>,
) -> (Vec<StreamRecord>, Option<String>) {
    let mut after = after;
    let mut all = Vec::new();
    loop {
        let batch = stream
            .read(shard, after.as_deref(), 500)
            .await
            .expect("read shard");
        let Some(last) = batch.last() else { break };
        after = last.change.sequence_number.clone();
        all.extend(batch);
    }
    (all, after)
}

/// Records come per item key in order, with NEW_AND_OLD images, in the
/// shape Lambda hands over; checkpoints are kept per consumer and shard.
pub async fn stream_suite(table: &dyn Table, stream: &dyn ChangeStream, caps: Capabilities) {
    let run = run_id();
    let shards = stream.shards().await.expect("list shards");
    assert!(!shards.is_empty(), "{SUITE}: at least one shard");

    // Where each shard ends now: earlier records are not ours.
    let mut start: HashMap<String, Option<String>> = HashMap::new();
    for s in &shards {
        start.insert(s.clone(), read_to_end(stream, s, None).await.1);
    }

    let pk = |n: usize| format!("conf-{run}#s{n}");
    let v = |n: usize, version: u64, status: &str| {
        item(json!({ "pk": pk(n), "sk": "meta", "version": version, "status": status }))
    };
    let mut expected: BTreeMap<String, Vec<Change>> = BTreeMap::new();
    let mut expect = |n: usize, name: &'static str, new: Option<Item>, old: Option<Item>| {
        expected.entry(pk(n)).or_default().push((name, new, old));
    };

    // k0: INSERT, MODIFY, an identical put (still MODIFY), REMOVE
    let (a, b) = (v(0, 1, "PLACED"), v(0, 2, "PAID"));
    table.put(a.clone(), Condition::Absent).await.unwrap();
    expect(0, "INSERT", Some(a.clone()), None);
    table.put(b.clone(), Condition::VersionIs(1)).await.unwrap();
    expect(0, "MODIFY", Some(b.clone()), Some(a.clone()));
    table.put(b.clone(), Condition::Always).await.unwrap();
    expect(0, "MODIFY", Some(b.clone()), Some(b.clone()));
    // failed writes leave no record
    assert!(table.put(a.clone(), Condition::VersionIs(1)).await.is_err());
    assert!(table
        .delete(&Key::new(pk(0), "meta"), Condition::VersionIs(9))
        .await
        .is_err());
    table
        .delete(&Key::new(pk(0), "meta"), Condition::Present)
        .await
        .unwrap();
    expect(0, "REMOVE", None, Some(b.clone()));
    // deleting what is not there leaves no record either
    table
        .delete(&Key::new(pk(0), "meta"), Condition::Always)
        .await
        .unwrap();

    // more keys, so several shards are likely used
    for n in 1..=8 {
        let it = v(n, 1, "PLACED");
        table.put(it.clone(), Condition::Absent).await.unwrap();
        expect(n, "INSERT", Some(it), None);
    }

    if caps.transactions {
        let (c, d) = (v(1, 2, "PAID"), v(9, 1, "PLACED"));
        table
            .transact(vec![
                TxOp::Put {
                    item: c.clone(),
                    condition: Condition::VersionIs(1),
                },
                TxOp::Put {
                    item: d.clone(),
                    condition: Condition::Absent,
                },
                TxOp::Delete {
                    key: Key::new(pk(2), "meta"),
                    condition: Condition::Present,
                },
                TxOp::Check {
                    key: Key::new(pk(3), "meta"),
                    condition: Condition::Present,
                },
            ])
            .await
            .unwrap();
        expect(1, "MODIFY", Some(c), Some(v(1, 1, "PLACED")));
        expect(9, "INSERT", Some(d), None);
        expect(2, "REMOVE", None, Some(v(2, 1, "PLACED")));
        // a cancelled transaction records nothing
        let r = table
            .transact(vec![
                TxOp::Put {
                    item: v(4, 2, "PAID"),
                    condition: Condition::VersionIs(1),
                },
                TxOp::Put {
                    item: v(5, 2, "PAID"),
                    condition: Condition::VersionIs(7),
                },
            ])
            .await;
        assert!(r.is_err(), "{SUITE}: the cancelled transaction fails");
    } else {
        skip(SUITE, "transactions", "adapter has no transactions");
    }
    let total: usize = expected.values().map(Vec::len).sum();

    // Collect our records from every shard (a real stream may lag a little).
    let ours = eventually(
        "all stream records of the run",
        DEADLINE,
        Duration::from_millis(100),
        || async {
            let mut ours: Vec<(String, StreamRecord)> = Vec::new();
            for s in &shards {
                let (recs, _) = read_to_end(stream, s, start[s].clone()).await;
                for r in recs {
                    let key_pk = image(&r.change.keys)
                        .and_then(|k| k.get("pk").and_then(Value::as_str).map(str::to_owned));
                    if key_pk.is_some_and(|p| p.starts_with(&format!("conf-{run}#"))) {
                        ours.push((s.clone(), r));
                    }
                }
            }
            (ours.len() >= total).then_some(ours)
        },
    )
    .await;
    assert_eq!(
        ours.len(),
        total,
        "{SUITE}: exactly one record per successful write"
    );

    let mut ids = HashSet::new();
    let mut shard_of_key: HashMap<String, String> = HashMap::new();
    let mut by_key: BTreeMap<String, Vec<&StreamRecord>> = BTreeMap::new();
    let mut last_seq: HashMap<&str, u128> = HashMap::new();
    for (shard, r) in &ours {
        // shape, as Lambda delivers it
        assert_eq!(
            r.event_source.as_deref(),
            Some("aws:dynamodb"),
            "{SUITE}/shape: eventSource"
        );
        assert_eq!(
            r.change.stream_view_type,
            Some(StreamViewType::NewAndOldImages),
            "{SUITE}/shape: view type"
        );
        assert!(!r.aws_region.is_empty(), "{SUITE}/shape: awsRegion");
        assert!(
            r.event_source_arn
                .as_deref()
                .is_some_and(|a| a.starts_with("arn:")),
            "{SUITE}/shape: eventSourceARN"
        );
        assert!(r.change.size_bytes > 0, "{SUITE}/shape: SizeBytes");
        assert!(
            ids.insert(r.event_id.clone()),
            "{SUITE}/shape: eventID {} repeats",
            r.event_id
        );
        let keys = image(&r.change.keys).expect("record has keys");
        assert_eq!(
            keys.len(),
            2,
            "{SUITE}/shape: Keys holds pk and sk: {keys:?}"
        );
        let pk = keys["pk"].as_str().unwrap().to_owned();
        // in order within the shard
        let seq = seq_num(r);
        if let Some(prev) = last_seq.insert(shard, seq) {
            assert!(
                seq > prev,
                "{SUITE}/order: sequence numbers rise within shard {shard}"
            );
        }
        let first_shard = shard_of_key
            .entry(pk.clone())
            .or_insert_with(|| shard.clone());
        assert_eq!(
            first_shard, shard,
            "{SUITE}/sharding: every record of {pk} is in one shard"
        );
        by_key.entry(pk).or_default().push(r);
    }
    // Per key: the writes in the order they happened, with both images.
    for (pk, want) in &expected {
        let mut got = by_key.remove(pk).unwrap_or_default();
        got.sort_by_key(|r| seq_num(r));
        let got: Vec<Change> = got
            .iter()
            .map(|r| {
                (
                    r.event_name.as_str(),
                    image(&r.change.new_image),
                    image(&r.change.old_image),
                )
            })
            .collect();
        assert_eq!(&got, want, "{SUITE}/per-key: records of {pk}");
    }

    // Reading from the middle: after the INSERT of k0 comes its first MODIFY.
    let k0_shard = &shard_of_key[&pk(0)];
    let k0: Vec<&StreamRecord> = ours
        .iter()
        .filter(|(s, r)| s == k0_shard && image(&r.change.keys).unwrap()["pk"] == pk(0))
        .map(|(_, r)| r)
        .collect();
    let (rest, _) = read_to_end(stream, k0_shard, k0[0].change.sequence_number.clone()).await;
    let next_k0 = rest
        .iter()
        .find(|r| image(&r.change.keys).unwrap()["pk"] == pk(0))
        .expect("k0 continues");
    assert_eq!(
        next_k0.event_name, "MODIFY",
        "{SUITE}/read-after: resumes after the given sequence number"
    );
    assert_eq!(next_k0.change.sequence_number, k0[1].change.sequence_number);

    changes_match_records(stream, k0_shard, start[k0_shard].clone()).await;
    checkpoints(stream, &run, k0_shard, &k0).await;
}

/// `read_changes` hands over the records `read` does, in whatever form: the
/// same sequence numbers and images through [`ChangeView`], and the same
/// record once built.
async fn changes_match_records(stream: &dyn ChangeStream, shard: &str, after: Option<String>) {
    let records = stream
        .read(shard, after.as_deref(), 50)
        .await
        .expect("read shard");
    let changes = stream
        // No further than `read` got: later writes may have come since.
        .read_changes(shard, after.as_deref(), records.len(), None)
        .await
        .expect("read changes");
    assert!(
        !records.is_empty(),
        "{SUITE}/changes: the run wrote records"
    );
    assert_eq!(
        changes.scanned,
        records.last().unwrap().change.sequence_number,
        "{SUITE}/changes: scanned up to the last record"
    );
    assert_eq!(
        changes.records.len(),
        records.len(),
        "{SUITE}/changes: as many as read"
    );
    let as_json = |i: ImageRef<'_>| {
        i.read::<Map<String, Value>>(&Default::default())
            .expect("an image reads as JSON")
    };
    for (change, record) in changes.records.iter().zip(&records) {
        let seq = record.change.sequence_number.as_deref();
        assert_eq!(Some(change.sequence()), seq, "{SUITE}/changes: sequence");
        assert_eq!(
            change.created_at(),
            record.change.approximate_creation_date_time,
            "{SUITE}/changes: creation time"
        );
        assert_eq!(as_json(change.new_image()), image(&record.change.new_image));
        assert_eq!(as_json(change.old_image()), image(&record.change.old_image));
        assert_eq!(
            &change.to_record().expect("the record builds"),
            record,
            "{SUITE}/changes: built, the record read returns"
        );
    }
}

async fn checkpoints(stream: &dyn ChangeStream, run: &str, shard: &str, recs: &[&StreamRecord]) {
    let consumer = format!("conf-{run}-reactor");
    let other = format!("conf-{run}-other");
    assert_eq!(
        stream.checkpoint(&consumer, shard).await.unwrap(),
        None,
        "{SUITE}/checkpoint: none at first"
    );
    let first = recs[0].change.sequence_number.clone().unwrap();
    let later = recs[recs.len() - 1].change.sequence_number.clone().unwrap();
    stream
        .save_checkpoint(&consumer, shard, &first)
        .await
        .unwrap();
    assert_eq!(
        stream
            .checkpoint(&consumer, shard)
            .await
            .unwrap()
            .as_deref(),
        Some(first.as_str())
    );
    stream
        .save_checkpoint(&consumer, shard, &later)
        .await
        .unwrap();
    assert_eq!(
        stream
            .checkpoint(&consumer, shard)
            .await
            .unwrap()
            .as_deref(),
        Some(later.as_str()),
        "{SUITE}/checkpoint: moves forward"
    );
    assert_eq!(
        stream.checkpoint(&other, shard).await.unwrap(),
        None,
        "{SUITE}/checkpoint: per consumer"
    );
    assert!(
        stream.read("no-such-shard", None, 1).await.is_err(),
        "{SUITE}: unknown shard is an error"
    );
}
