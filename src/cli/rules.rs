//! `switchyard rules ...` and `switchyard bench rules`.

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use router_rules::topology::{FilterPolicyScope, Subscription};
use router_rules::{BusMatcher, TopicMatcher};
use serde_json::Value;
use switchyard_shared::events::sns_attributes;
use switchyard_shared::ports::Destination;
use switchyard_shared::Envelope;

use super::GlobalArgs;

#[derive(Debug, Args)]
pub struct RulesArgs {
    #[command(subcommand)]
    pub command: RulesCommand,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scope {
    #[value(name = "MessageAttributes")]
    MessageAttributes,
    #[value(name = "MessageBody")]
    MessageBody,
}

#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// Validate every pattern and filter policy of the topology against the event schemas.
    Check,
    /// Match one event against one pattern: prints `match` (exit 0) or `no match` (exit 1);
    /// an invalid pattern prints the error (exit 2).
    Test {
        /// The EventBridge pattern or SNS filter policy: a file path or inline JSON.
        #[arg(long)]
        pattern: String,
        /// The event (for --sns, the message body): a file path or inline JSON.
        #[arg(long)]
        event: Option<String>,
        /// Treat the pattern as an SNS subscription filter policy.
        #[arg(long)]
        sns: bool,
        /// The filter policy scope (with --sns).
        #[arg(long, value_enum, default_value_t = Scope::MessageAttributes, requires = "sns")]
        scope: Scope,
        /// SNS MessageAttributes: {"name": {"Type": "String", "Value": "..."}} (file or inline JSON).
        #[arg(long, requires = "sns")]
        attributes: Option<String>,
    },
    /// List the subscriptions an event reaches, and for the others the first condition that failed.
    Explain {
        /// The event envelope: a file path or inline JSON.
        #[arg(long)]
        event: String,
    },
}

#[derive(Debug, Args)]
pub struct BenchRulesArgs {
    /// Seconds of measurement per engine and rule count.
    #[arg(long, default_value_t = 2.0)]
    pub seconds: f64,
    /// Rule counts to measure (must include 10, 1000 and 10000 for the summary line).
    #[arg(long, value_delimiter = ',', default_values_t = [10usize, 100, 1000, 10_000])]
    pub rules: Vec<usize>,
    /// Distinct events cycled through.
    #[arg(long, default_value_t = 512)]
    pub events: usize,
}

pub async fn run(global: &GlobalArgs, args: RulesArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        RulesCommand::Check => check(global),
        RulesCommand::Test {
            pattern,
            event,
            sns,
            scope,
            attributes,
        } => test(
            &pattern,
            event.as_deref(),
            sns,
            scope,
            attributes.as_deref(),
        ),
        RulesCommand::Explain { event } => explain(global, &event),
    }
}

/// Inline JSON if it parses as JSON, else the contents of the file it names.
fn json_arg(what: &str, arg: &str) -> anyhow::Result<(Value, String)> {
    let text = if serde_json::from_str::<Value>(arg).is_ok() {
        arg.to_owned()
    } else {
        std::fs::read_to_string(arg)
            .with_context(|| format!("--{what} is neither valid JSON nor a readable file: {arg}"))?
    };
    let value = serde_json::from_str(&text).with_context(|| format!("--{what}: invalid JSON"))?;
    Ok((value, text))
}

/// An SNS message body: inline JSON, the contents of the file it names, or
/// else the text itself. A body need not be JSON: SNS delivers any text, and
/// such a body matches no MessageBody policy (it is not an error).
fn body_arg(arg: &str) -> anyhow::Result<String> {
    if serde_json::from_str::<Value>(arg).is_ok() {
        return Ok(arg.to_owned());
    }
    match std::fs::read_to_string(arg) {
        Ok(text) => Ok(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!(
                "note: --event is not JSON and names no file; it is the message body as written"
            );
            Ok(arg.to_owned())
        }
        Err(e) => Err(e).with_context(|| format!("--event: cannot read {arg}")),
    }
}

fn test(
    pattern: &str,
    event: Option<&str>,
    sns: bool,
    scope: Scope,
    attributes: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let (pattern, _) = json_arg("pattern", pattern)?;
    let matched = if sns {
        let scope = match scope {
            Scope::MessageAttributes => FilterPolicyScope::MessageAttributes,
            Scope::MessageBody => FilterPolicyScope::MessageBody,
        };
        let matcher = match TopicMatcher::compile([((), &pattern, scope)]) {
            Ok(m) => m,
            Err(e) => return Ok(invalid(&e)),
        };
        let attrs = match attributes {
            Some(a) => router_rules::parse_sns_attributes(&json_arg("attributes", a)?.0)?,
            None => BTreeMap::new(),
        };
        let body = match event {
            Some(e) => body_arg(e)?,
            None => "{}".to_owned(),
        };
        !matcher.matches(&attrs, &body).is_empty()
    } else {
        let matcher = match BusMatcher::compile([((), &pattern)]) {
            Ok(m) => m,
            Err(e) => return Ok(invalid(&e)),
        };
        let event = event.context("--event is required")?;
        let (_, text) = json_arg("event", event)?;
        !matcher.try_matches(&text)?.is_empty()
    };
    println!("{}", if matched { "match" } else { "no match" });
    Ok(if matched {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn invalid(e: &router_rules::PatternError) -> ExitCode {
    println!("{e}");
    ExitCode::from(2)
}

fn check(global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let topology = super::load_topology(global)?;
    let problems = router_rules::check::check_topology(&topology);
    let subscriptions: usize = topology
        .consumers
        .iter()
        .map(|c| c.subscriptions.len())
        .sum();
    if problems.is_empty() {
        println!(
            "topology ok: {} consumers, {subscriptions} subscriptions checked",
            topology.consumers.len()
        );
        return Ok(ExitCode::SUCCESS);
    }
    for p in &problems {
        println!("error: {p}");
    }
    println!(
        "{} problem(s) in {subscriptions} subscriptions",
        problems.len()
    );
    Ok(ExitCode::FAILURE)
}

fn explain(global: &GlobalArgs, event: &str) -> anyhow::Result<ExitCode> {
    let topology = super::load_topology(global)?;
    let (_, text) = json_arg("event", event)?;
    let envelope =
        Envelope::from_json(&text).context("--event must be a Switchyard event envelope")?;
    let destination = topology
        .destination_of(&envelope.detail_type)
        .with_context(|| format!("no route for detail-type {:?}", envelope.detail_type))?;
    let (mut reached, mut total) = (0, 0);
    let mut verdicts = BTreeMap::new();
    match &destination {
        Destination::Bus(bus) => {
            let rules: Vec<_> = topology
                .subscriptions_on(&destination)
                .filter_map(|(c, s)| match s {
                    Subscription::Bus(b) => Some((
                        (c.name.clone(), format!("rule {} on bus {bus}", b.rule)),
                        &b.pattern,
                    )),
                    Subscription::Topic(_) => None,
                })
                .collect();
            let m = BusMatcher::compile(rules)?;
            for v in m.explain(&text)? {
                verdicts.insert(v.id, v.failure);
            }
        }
        Destination::Topic(topic) => {
            let policies: Vec<_> = topology
                .subscriptions_on(&destination)
                .filter_map(|(c, s)| match s {
                    Subscription::Topic(t) => Some((
                        (
                            c.name.clone(),
                            format!(
                                "subscription to topic {topic} ({})",
                                t.filter_policy_scope.as_str()
                            ),
                        ),
                        &t.filter_policy,
                        t.filter_policy_scope,
                    )),
                    Subscription::Bus(_) => None,
                })
                .collect();
            let m = TopicMatcher::compile(policies)?;
            for v in m.explain(&sns_attributes(&envelope), &text) {
                verdicts.insert(v.id, v.failure);
            }
        }
    }
    let target = match &destination {
        Destination::Bus(b) => format!("bus {b}"),
        Destination::Topic(t) => format!("topic {t}"),
    };
    println!("{} events are published to {target}", envelope.detail_type);
    for consumer in &topology.consumers {
        for sub in &consumer.subscriptions {
            total += 1;
            let label = match sub {
                Subscription::Bus(b) => format!("rule {} on bus {}", b.rule, b.bus),
                Subscription::Topic(t) => format!(
                    "subscription to topic {} ({})",
                    t.topic,
                    t.filter_policy_scope.as_str()
                ),
            };
            match verdicts.get(&(consumer.name.clone(), label.clone())) {
                Some(None) => {
                    reached += 1;
                    println!("reaches  {} ({label})", consumer.name);
                }
                Some(Some(why)) => println!("misses   {} ({label}): {why}", consumer.name),
                None => println!(
                    "misses   {} ({label}): listens elsewhere, not on {target}",
                    consumer.name
                ),
            }
        }
    }
    println!("{reached} of {total} subscriptions reached");
    Ok(ExitCode::SUCCESS)
}

#[cfg(feature = "bench")]
pub async fn bench(_global: &GlobalArgs, args: BenchRulesArgs) -> anyhow::Result<ExitCode> {
    use router_rules::bench;
    let config = bench::Config {
        rule_counts: args.rules,
        events: args.events.max(1),
        measure: std::time::Duration::from_secs_f64(args.seconds.max(0.05)),
        ..bench::Config::default()
    };
    println!(
        "rules-bench: {} events, {:.1} s per engine per rule count, one core",
        config.events, args.seconds
    );
    println!(
        "{:>7} {:>14} {:>14} {:>7} {:>9} {:>13}",
        "rules", "ours ev/s", "quamina ev/s", "ratio", "matches", "disagreements"
    );
    let report = tokio::task::block_in_place(|| {
        bench::run(&config, |r| match (&r.quamina, r.ratio()) {
            (Ok(q), Some(ratio)) => println!(
                "{:>7} {:>14.0} {:>14.0} {:>7.2} {:>9.2} {:>13}",
                r.rules,
                r.ours.events_per_s,
                q.events_per_s,
                ratio,
                r.ours.matches_per_event,
                r.disagreements
            ),
            _ => println!(
                "{:>7} {:>14.0} {:>14} {:>7} {:>9.2} {:>13}   quamina failed: {}",
                r.rules,
                r.ours.events_per_s,
                "-",
                "-",
                r.ours.matches_per_event,
                "-",
                r.quamina
                    .as_ref()
                    .err()
                    .map(String::as_str)
                    .unwrap_or("no rate")
            ),
        })
    })?;
    println!("mean event size: {:.0} bytes", report.event_bytes);
    println!("{}", report.summary());
    Ok(ExitCode::SUCCESS)
}

#[cfg(not(feature = "bench"))]
pub async fn bench(_global: &GlobalArgs, _args: BenchRulesArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!(
        "this switchyard was built without the rules benchmark (it pulls in the quamina crate); \
         rebuild with `cargo build --release --features bench` and run `target/release/switchyard bench rules`"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVENT: &str = r#"{"detail-type":"OrderPlaced","detail":{"total_cents":500}}"#;

    fn bus(pattern: &str, event: &str) -> ExitCode {
        test(pattern, Some(event), false, Scope::MessageAttributes, None).unwrap()
    }

    #[test]
    fn rules_test_exit_codes() {
        assert_eq!(
            bus(
                r#"{"detail":{"total_cents":[{"numeric":[">",100]}]}}"#,
                EVENT
            ),
            ExitCode::SUCCESS
        );
        assert_eq!(
            bus(
                r#"{"detail":{"total_cents":[{"numeric":["<",100]}]}}"#,
                EVENT
            ),
            ExitCode::FAILURE
        );
        assert_eq!(
            bus(
                r#"{"detail":{"total_cents":[{"numeric":[">",9,"<",1]}]}}"#,
                EVENT
            ),
            ExitCode::from(2)
        );
        assert!(test(
            r#"{"a":["x"]}"#,
            Some("/no/such/file.json"),
            false,
            Scope::MessageAttributes,
            None
        )
        .is_err());
    }

    #[test]
    fn rules_test_sns_scopes() {
        let attrs = r#"{"event_type":{"Type":"String","Value":"ImageUploaded"},"size_bytes":{"Type":"Number","Value":"42"}}"#;
        let policy = r#"{"event_type":["ImageUploaded"],"size_bytes":[{"numeric":["<",100]}]}"#;
        let run =
            |p: &str, scope, event: Option<&str>| test(p, event, true, scope, Some(attrs)).unwrap();
        assert_eq!(
            run(policy, Scope::MessageAttributes, None),
            ExitCode::SUCCESS
        );
        let body_policy = r#"{"detail":{"total_cents":[{"numeric":[">",100]}]}}"#;
        assert_eq!(
            run(body_policy, Scope::MessageBody, Some(EVENT)),
            ExitCode::SUCCESS
        );
        assert_eq!(
            run(body_policy, Scope::MessageAttributes, None),
            ExitCode::from(2)
        );
        // A body that is not JSON matches no MessageBody policy and is no error
        // (inline, or read from a file), even for a policy of `exists: false`.
        assert_eq!(
            run(
                body_policy,
                Scope::MessageBody,
                Some("plain text, not JSON")
            ),
            ExitCode::FAILURE
        );
        let file = std::env::temp_dir().join(format!("sy-rules-body-{}.txt", std::process::id()));
        std::fs::write(&file, "{\"detail\": {\"total_cents\": 500").unwrap();
        let absent = r#"{"detail":{"total_cents":[{"exists":false}]}}"#;
        let from_file = run(absent, Scope::MessageBody, file.to_str());
        std::fs::remove_file(&file).unwrap();
        assert_eq!(from_file, ExitCode::FAILURE);
        let suffix = r#"{"a":[{"anything-but":{"suffix":"x"}}]}"#;
        assert_eq!(
            run(suffix, Scope::MessageAttributes, None),
            ExitCode::from(2)
        );
    }
}
