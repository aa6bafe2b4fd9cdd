//! `switchyard provision --backend aws`: creates the topology on AWS (or an
//! emulator) the way `infra/` deploys it, idempotently.
//!
//! Every resource is looked up first and created only if missing; an
//! existing one is compared with what the topology wants and updated only
//! where it differs. A second run therefore reports every step unchanged.
//!
//! What gets created, in dependency order:
//! 1. per consumer, its DLQ, then its queue with a redrive policy to the DLQ
//!    and a queue policy that lets its SNS topics and EventBridge rules send;
//!    per stream consumer, its on-failure queue;
//! 2. the buses, and per bus subscription a rule with the queue as target;
//! 3. the topics, and per topic subscription a raw-delivery SQS subscription
//!    with its filter policy and scope;
//! 4. the table (`pk`/`sk`, on-demand) with its `NEW_AND_OLD_IMAGES` stream,
//!    and the stream pollers' checkpoint table;
//! 5. the bucket.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::Duration;

use router_rules::topology::{ConsumerSpec, Subscription};
use router_rules::Topology;
use serde_json::{json, Value};
use switchyard_shared::aws::sdk::{dynamodb, eventbridge, s3, sns, sqs};
use switchyard_shared::aws::stream::checkpoint_table_name;
use switchyard_shared::aws::AwsClients;
use switchyard_shared::items::TTL_ATTRIBUTE;

pub mod resources;

pub use resources::AwsResources;

/// How long to wait for a new table to become ACTIVE.
const TABLE_READY_DEADLINE: Duration = Duration::from_secs(120);

#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error("{what}: {message}")]
    Aws { what: String, message: String },
    #[error("{0}")]
    Invalid(String),
}

fn aws_err<E: std::error::Error>(what: impl Into<String>) -> impl FnOnce(E) -> ProvisionError {
    let what = what.into();
    move |e| ProvisionError::Aws {
        what,
        message: sqs::error::DisplayErrorContext(&e).to_string(),
    }
}

/// Turns TTL on for `attribute` unless it is on (or turning on) already;
/// true when it changed anything. TTL on another attribute is an error from
/// DynamoDB, which takes one TTL attribute per table: that needs a person.
async fn enable_ttl(
    ddb: &dynamodb::Client,
    table: &str,
    attribute: &str,
) -> Result<bool, ProvisionError> {
    use dynamodb::types::{TimeToLiveSpecification, TimeToLiveStatus};
    let current = ddb
        .describe_time_to_live()
        .table_name(table)
        .send()
        .await
        .map_err(aws_err(format!("look up the TTL of table {table}")))?;
    let on = current.time_to_live_description().is_some_and(|d| {
        d.attribute_name() == Some(attribute)
            && matches!(
                d.time_to_live_status(),
                Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)
            )
    });
    if on {
        return Ok(false);
    }
    let spec = TimeToLiveSpecification::builder()
        .attribute_name(attribute)
        .enabled(true)
        .build()
        .map_err(aws_err("build the TTL specification"))?;
    ddb.update_time_to_live()
        .table_name(table)
        .time_to_live_specification(spec)
        .send()
        .await
        .map_err(aws_err(format!(
            "enable TTL on {attribute} of table {table}"
        )))?;
    Ok(true)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Created,
    Updated,
    Unchanged,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Change::Created => "created",
            Change::Updated => "updated",
            Change::Unchanged => "unchanged",
        })
    }
}

/// One resource and what provisioning did to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub resource: String,
    pub change: Change,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProvisionReport {
    pub steps: Vec<Step>,
}

impl ProvisionReport {
    fn record(&mut self, resource: impl Into<String>, change: Change) {
        let resource = resource.into();
        tracing::info!(%resource, %change, "provisioned");
        self.steps.push(Step { resource, change });
    }

    pub fn count(&self, change: Change) -> usize {
        self.steps.iter().filter(|s| s.change == change).count()
    }
}

/// The SNS topic's resource name: FIFO topics must end in `.fifo`.
pub fn topic_resource_name(name: &str, fifo: bool) -> String {
    if fifo && !name.ends_with(".fifo") {
        format!("{name}.fifo")
    } else {
        name.to_owned()
    }
}

/// The account and region of an ARN (`arn:aws:svc:region:account:...`).
fn arn_parts(arn: &str) -> Option<(&str, &str)> {
    let mut it = arn.split(':');
    let (_, _, _, region, account) = (it.next()?, it.next()?, it.next()?, it.next()?, it.next()?);
    Some((region, account))
}

/// JSON texts are equal if they parse to the same value (AWS reformats them).
fn same_json(a: Option<&str>, b: &str) -> bool {
    let parse = |s: &str| serde_json::from_str::<Value>(s).ok();
    a.and_then(parse).is_some_and(|a| Some(a) == parse(b))
}

struct Provisioner<'a> {
    clients: &'a AwsClients,
    topology: &'a Topology,
    report: ProvisionReport,
    region: String,
    account: String,
    queue_arns: BTreeMap<String, String>,
}

/// Creates (or converges) every resource of the topology.
pub async fn provision(
    topology: &Topology,
    clients: &AwsClients,
) -> Result<ProvisionReport, ProvisionError> {
    let mut p = Provisioner {
        clients,
        topology,
        report: ProvisionReport::default(),
        region: clients.region().to_owned(),
        account: String::new(),
        queue_arns: BTreeMap::new(),
    };
    p.queues().await?;
    p.buses().await?;
    p.topics().await?;
    p.tables().await?;
    p.bucket().await?;
    Ok(p.report)
}

impl Provisioner<'_> {
    fn topic_arn(&self, name: &str) -> String {
        let fifo = self
            .topology
            .topics
            .iter()
            .any(|t| t.name == name && t.fifo);
        format!(
            "arn:aws:sns:{}:{}:{}",
            self.region,
            self.account,
            topic_resource_name(name, fifo)
        )
    }

    fn rule_arn(&self, bus: &str, rule: &str) -> String {
        format!(
            "arn:aws:events:{}:{}:rule/{bus}/{rule}",
            self.region, self.account
        )
    }

    /// Creates the queue or converges its attributes; returns its ARN.
    async fn queue(
        &mut self,
        name: &str,
        fifo: bool,
        mut attrs: HashMap<sqs::types::QueueAttributeName, String>,
    ) -> Result<String, ProvisionError> {
        let clients = self.clients;
        use sqs::types::QueueAttributeName as A;
        let sqs = &clients.sqs;
        let existing = sqs.get_queue_url().queue_name(name).send().await;
        let url = match existing {
            Ok(out) => out.queue_url.unwrap_or_default(),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_queue_does_not_exist())
                    || sqs::error::ProvideErrorMetadata::code(&e)
                        .is_some_and(|c| c.contains("NonExistentQueue")) =>
            {
                if fifo {
                    attrs.insert(A::FifoQueue, "true".into());
                }
                let out = sqs
                    .create_queue()
                    .queue_name(name)
                    .set_attributes(Some(attrs))
                    .send()
                    .await
                    .map_err(aws_err(format!("create queue {name}")))?;
                self.report.record(format!("queue {name}"), Change::Created);
                let url = out.queue_url.unwrap_or_default();
                return self.queue_arn(&url).await;
            }
            Err(e) => return Err(aws_err(format!("look up queue {name}"))(e)),
        };
        let current = sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(A::All)
            .send()
            .await
            .map_err(aws_err(format!("read queue {name}")))?
            .attributes
            .unwrap_or_default();
        let differs: HashMap<A, String> = attrs
            .into_iter()
            .filter(|(k, v)| {
                let now = current.get(k).map(String::as_str);
                let json_valued = matches!(k, A::Policy | A::RedrivePolicy);
                !(now == Some(v.as_str()) || (json_valued && same_json(now, v)))
            })
            .collect();
        if differs.is_empty() {
            self.report
                .record(format!("queue {name}"), Change::Unchanged);
        } else {
            sqs.set_queue_attributes()
                .queue_url(&url)
                .set_attributes(Some(differs))
                .send()
                .await
                .map_err(aws_err(format!("update queue {name}")))?;
            self.report.record(format!("queue {name}"), Change::Updated);
        }
        current.get(&A::QueueArn).cloned().ok_or_else(|| {
            ProvisionError::Invalid(format!("queue {name} has no QueueArn attribute"))
        })
    }

    async fn queue_arn(&self, url: &str) -> Result<String, ProvisionError> {
        use sqs::types::QueueAttributeName as A;
        let out = self
            .clients
            .sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(A::QueueArn)
            .send()
            .await
            .map_err(aws_err(format!("read queue {url}")))?;
        out.attributes
            .and_then(|mut a| a.remove(&A::QueueArn))
            .ok_or_else(|| {
                ProvisionError::Invalid(format!("queue {url} has no QueueArn attribute"))
            })
    }

    /// The queue policy letting each of the consumer's topics and rules send to it.
    fn queue_policy(&self, consumer: &ConsumerSpec, queue_arn: &str) -> String {
        let statements: Vec<Value> = consumer
            .subscriptions
            .iter()
            .map(|s| {
                let (sid, service, source) = match s {
                    Subscription::Topic(t) => (
                        format!("topic-{}", t.topic),
                        "sns.amazonaws.com",
                        self.topic_arn(&t.topic),
                    ),
                    Subscription::Bus(b) => (
                        format!("rule-{}-{}", b.bus, b.rule),
                        "events.amazonaws.com",
                        self.rule_arn(&b.bus, &b.rule),
                    ),
                };
                json!({
                    "Sid": sid,
                    "Effect": "Allow",
                    "Principal": {"Service": service},
                    "Action": "sqs:SendMessage",
                    "Resource": queue_arn,
                    "Condition": {"ArnEquals": {"aws:SourceArn": source}},
                })
            })
            .collect();
        json!({"Version": "2012-10-17", "Statement": statements}).to_string()
    }

    async fn queues(&mut self) -> Result<(), ProvisionError> {
        let topology = self.topology;
        use sqs::types::QueueAttributeName as A;
        let fourteen_days = (14 * 24 * 3600).to_string();
        for c in &topology.consumers {
            let dlq_arn = self
                .queue(
                    &c.dlq_name(),
                    c.queue.fifo,
                    HashMap::from([(A::MessageRetentionPeriod, fourteen_days.clone())]),
                )
                .await?;
            if self.account.is_empty() {
                let (_, account) = arn_parts(&dlq_arn).ok_or_else(|| {
                    ProvisionError::Invalid(format!("unexpected queue ARN {dlq_arn}"))
                })?;
                self.account = account.to_owned();
            }
            let queue_name = c.queue_name();
            // The ARN is needed inside the policy; it is fixed by region, account and name.
            let queue_arn = format!("arn:aws:sqs:{}:{}:{queue_name}", self.region, self.account);
            let mut attrs = HashMap::from([
                (A::VisibilityTimeout, c.queue.visibility_timeout_s.to_string()),
                (
                    A::RedrivePolicy,
                    json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": c.queue.max_receive_count}).to_string(),
                ),
                (A::Policy, self.queue_policy(c, &queue_arn)),
            ]);
            if c.queue.fifo {
                attrs.insert(A::ContentBasedDeduplication, "false".into());
            }
            let arn = self.queue(&queue_name, c.queue.fifo, attrs).await?;
            self.queue_arns.insert(c.name.clone(), arn);
        }
        for s in &topology.stream_consumers {
            let name = s.on_failure_queue();
            self.queue(
                &name,
                false,
                HashMap::from([(A::MessageRetentionPeriod, fourteen_days.clone())]),
            )
            .await?;
        }
        Ok(())
    }

    async fn buses(&mut self) -> Result<(), ProvisionError> {
        let (clients, topology) = (self.clients, self.topology);
        let eb = &clients.eventbridge;
        for bus in &topology.buses {
            let name = &bus.name;
            match eb.describe_event_bus().name(name).send().await {
                Ok(_) => self.report.record(format!("bus {name}"), Change::Unchanged),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_resource_not_found_exception()) =>
                {
                    eb.create_event_bus()
                        .name(name)
                        .send()
                        .await
                        .map_err(aws_err(format!("create bus {name}")))?;
                    self.report.record(format!("bus {name}"), Change::Created);
                }
                Err(e) => return Err(aws_err(format!("look up bus {name}"))(e)),
            }
        }
        for c in &topology.consumers {
            for s in &c.subscriptions {
                let Subscription::Bus(b) = s else { continue };
                let pattern = b.pattern.to_string();
                let what = format!("rule {}/{}", b.bus, b.rule);
                let current = eb
                    .describe_rule()
                    .name(&b.rule)
                    .event_bus_name(&b.bus)
                    .send()
                    .await;
                let change = match current {
                    Ok(r)
                        if same_json(r.event_pattern(), &pattern)
                            && r.state() == Some(&eventbridge::types::RuleState::Enabled) =>
                    {
                        Change::Unchanged
                    }
                    Ok(_) => Change::Updated,
                    Err(e)
                        if e.as_service_error()
                            .is_some_and(|s| s.is_resource_not_found_exception()) =>
                    {
                        Change::Created
                    }
                    Err(e) => return Err(aws_err(format!("look up {what}"))(e)),
                };
                if change != Change::Unchanged {
                    eb.put_rule()
                        .name(&b.rule)
                        .event_bus_name(&b.bus)
                        .event_pattern(&pattern)
                        .state(eventbridge::types::RuleState::Enabled)
                        .description(format!("Switchyard: {} -> {}", b.bus, c.name))
                        .send()
                        .await
                        .map_err(aws_err(format!("put {what}")))?;
                }
                self.report.record(&what, change);
                self.rule_target(c, &b.bus, &b.rule).await?;
            }
        }
        Ok(())
    }

    async fn rule_target(
        &mut self,
        c: &ConsumerSpec,
        bus: &str,
        rule: &str,
    ) -> Result<(), ProvisionError> {
        let clients = self.clients;
        let eb = &clients.eventbridge;
        let queue_arn = &self.queue_arns[&c.name];
        let what = format!("target {bus}/{rule} -> {}", c.queue_name());
        let targets = eb
            .list_targets_by_rule()
            .rule(rule)
            .event_bus_name(bus)
            .send()
            .await
            .map_err(aws_err(format!("list targets of {bus}/{rule}")))?;
        let present = targets.targets().iter().find(|t| t.id() == c.name);
        let change = match present {
            Some(t) if t.arn() == queue_arn => Change::Unchanged,
            Some(_) => Change::Updated,
            None => Change::Created,
        };
        if change != Change::Unchanged {
            let mut target = eventbridge::types::Target::builder()
                .id(&c.name)
                .arn(queue_arn);
            if c.queue.fifo {
                // EventBridge needs a group id for FIFO targets; one group keeps the bus's order.
                target = target.sqs_parameters(
                    eventbridge::types::SqsParameters::builder()
                        .message_group_id(&c.name)
                        .build(),
                );
            }
            let target = target.build().map_err(aws_err(format!("build {what}")))?;
            let out = eb
                .put_targets()
                .rule(rule)
                .event_bus_name(bus)
                .targets(target)
                .send()
                .await
                .map_err(aws_err(format!("put {what}")))?;
            if out.failed_entry_count() > 0 {
                let why: Vec<String> = out
                    .failed_entries()
                    .iter()
                    .map(|f| {
                        format!(
                            "{}: {}",
                            f.error_code().unwrap_or_default(),
                            f.error_message().unwrap_or_default()
                        )
                    })
                    .collect();
                return Err(ProvisionError::Aws {
                    what,
                    message: why.join("; "),
                });
            }
        }
        self.report.record(what, change);
        Ok(())
    }

    async fn topics(&mut self) -> Result<(), ProvisionError> {
        let (clients, topology) = (self.clients, self.topology);
        let sns = &clients.sns;
        let existing = list_topic_arns(sns).await?;
        for t in &topology.topics {
            let arn = self.topic_arn(&t.name);
            let resource = topic_resource_name(&t.name, t.fifo);
            if existing.contains(&arn) {
                self.report
                    .record(format!("topic {resource}"), Change::Unchanged);
            } else {
                let mut attrs = HashMap::new();
                if t.fifo {
                    attrs.insert("FifoTopic".to_owned(), "true".to_owned());
                }
                let out = sns
                    .create_topic()
                    .name(&resource)
                    .set_attributes((!attrs.is_empty()).then_some(attrs))
                    .send()
                    .await
                    .map_err(aws_err(format!("create topic {resource}")))?;
                if out.topic_arn() != Some(arn.as_str()) {
                    return Err(ProvisionError::Invalid(format!(
                        "topic {resource} got ARN {:?}, expected {arn}",
                        out.topic_arn()
                    )));
                }
                self.report
                    .record(format!("topic {resource}"), Change::Created);
            }
        }
        for c in &topology.consumers {
            for s in &c.subscriptions {
                let Subscription::Topic(sub) = s else {
                    continue;
                };
                let topic_arn = self.topic_arn(&sub.topic);
                let queue_arn = self.queue_arns[&c.name].clone();
                let wanted = BTreeMap::from([
                    ("RawMessageDelivery", "true".to_owned()),
                    ("FilterPolicy", sub.filter_policy.to_string()),
                    (
                        "FilterPolicyScope",
                        sub.filter_policy_scope.as_str().to_owned(),
                    ),
                ]);
                self.subscription(&topic_arn, &sub.topic, &queue_arn, &c.queue_name(), wanted)
                    .await?;
            }
        }
        Ok(())
    }

    async fn subscription(
        &mut self,
        topic_arn: &str,
        topic: &str,
        queue_arn: &str,
        queue: &str,
        wanted: BTreeMap<&str, String>,
    ) -> Result<(), ProvisionError> {
        let clients = self.clients;
        let sns = &clients.sns;
        let what = format!("subscription {topic} -> {queue}");
        let mut token = None;
        let mut found = None;
        loop {
            let page = sns
                .list_subscriptions_by_topic()
                .topic_arn(topic_arn)
                .set_next_token(token)
                .send()
                .await
                .map_err(aws_err(format!("list subscriptions of {topic}")))?;
            found = found.or_else(|| {
                page.subscriptions()
                    .iter()
                    .find(|s| s.protocol() == Some("sqs") && s.endpoint() == Some(queue_arn))
                    .and_then(|s| s.subscription_arn().map(str::to_owned))
            });
            token = page.next_token;
            if token.is_none() || found.is_some() {
                break;
            }
        }
        let Some(sub_arn) = found.filter(|a| a.starts_with("arn:")) else {
            sns.subscribe()
                .topic_arn(topic_arn)
                .protocol("sqs")
                .endpoint(queue_arn)
                .set_attributes(Some(
                    wanted.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
                ))
                .return_subscription_arn(true)
                .send()
                .await
                .map_err(aws_err(format!("create {what}")))?;
            self.report.record(what, Change::Created);
            return Ok(());
        };
        let current = sns
            .get_subscription_attributes()
            .subscription_arn(&sub_arn)
            .send()
            .await
            .map_err(aws_err(format!("read {what}")))?
            .attributes
            .unwrap_or_default();
        let mut change = Change::Unchanged;
        for (name, value) in wanted {
            let now = current.get(name).map(String::as_str);
            // SNS leaves the scope unset when it is the default.
            let now = now.or((name == "FilterPolicyScope").then_some("MessageAttributes"));
            if now == Some(value.as_str()) || (name == "FilterPolicy" && same_json(now, &value)) {
                continue;
            }
            sns.set_subscription_attributes()
                .subscription_arn(&sub_arn)
                .attribute_name(name)
                .attribute_value(value)
                .send()
                .await
                .map_err(aws_err(format!("update {what} ({name})")))?;
            change = Change::Updated;
        }
        self.report.record(what, change);
        Ok(())
    }

    async fn tables(&mut self) -> Result<(), ProvisionError> {
        let name = self.topology.table.name.clone();
        // The main table expires applied-event markers, as infra/ sets it up.
        self.table(&name, true, Some(TTL_ATTRIBUTE)).await?;
        self.table(&checkpoint_table_name(&name), false, None).await
    }

    async fn table(
        &mut self,
        name: &str,
        stream: bool,
        ttl: Option<&str>,
    ) -> Result<(), ProvisionError> {
        let clients = self.clients;
        use dynamodb::types::{
            AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
            StreamSpecification, StreamViewType, TableStatus,
        };
        let ddb = &clients.dynamodb;
        let what = format!("table {name}");
        let spec = || {
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::NewAndOldImages)
                .build()
                .map_err(aws_err(format!("build stream of {name}")))
        };
        let mut change = match ddb.describe_table().table_name(name).send().await {
            Ok(out) => {
                let current = out.table().and_then(|t| t.stream_specification());
                let has_stream = current.is_some_and(|s| {
                    s.stream_enabled()
                        && s.stream_view_type() == Some(&StreamViewType::NewAndOldImages)
                });
                if stream && !has_stream {
                    ddb.update_table()
                        .table_name(name)
                        .stream_specification(spec()?)
                        .send()
                        .await
                        .map_err(aws_err(format!("enable the stream of {what}")))?;
                    Change::Updated
                } else {
                    Change::Unchanged
                }
            }
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                let attr = |n: &str| {
                    AttributeDefinition::builder()
                        .attribute_name(n)
                        .attribute_type(ScalarAttributeType::S)
                        .build()
                        .map_err(aws_err("build attribute"))
                };
                let key = |n: &str, t: KeyType| {
                    KeySchemaElement::builder()
                        .attribute_name(n)
                        .key_type(t)
                        .build()
                        .map_err(aws_err("build key"))
                };
                ddb.create_table()
                    .table_name(name)
                    .attribute_definitions(attr("pk")?)
                    .attribute_definitions(attr("sk")?)
                    .key_schema(key("pk", KeyType::Hash)?)
                    .key_schema(key("sk", KeyType::Range)?)
                    .billing_mode(BillingMode::PayPerRequest)
                    .set_stream_specification(if stream { Some(spec()?) } else { None })
                    .send()
                    .await
                    .map_err(aws_err(format!("create {what}")))?;
                Change::Created
            }
            Err(e) => return Err(aws_err(format!("look up {what}"))(e)),
        };
        // Wait for ACTIVE (a condition with a deadline), polling DescribeTable.
        let deadline = tokio::time::Instant::now() + TABLE_READY_DEADLINE;
        loop {
            let out = ddb
                .describe_table()
                .table_name(name)
                .send()
                .await
                .map_err(aws_err(format!("look up {name}")))?;
            if out.table().and_then(|t| t.table_status()) == Some(&TableStatus::Active) {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ProvisionError::Invalid(format!(
                    "table {name} is not ACTIVE after {TABLE_READY_DEADLINE:?}"
                )));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        // TTL is set on an ACTIVE table only, and is part of the table's step.
        if let Some(attribute) = ttl {
            if enable_ttl(ddb, name, attribute).await? && change == Change::Unchanged {
                change = Change::Updated;
            }
        }
        self.report.record(what, change);
        Ok(())
    }

    async fn bucket(&mut self) -> Result<(), ProvisionError> {
        let clients = self.clients;
        let name = self.topology.bucket.name.clone();
        let s3c = &clients.s3;
        match s3c.head_bucket().bucket(&name).send().await {
            Ok(_) => self
                .report
                .record(format!("bucket {name}"), Change::Unchanged),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => {
                // us-east-1 is the one region that takes no location constraint.
                let config = (self.region != "us-east-1").then(|| {
                    s3::types::CreateBucketConfiguration::builder()
                        .location_constraint(s3::types::BucketLocationConstraint::from(
                            self.region.as_str(),
                        ))
                        .build()
                });
                s3c.create_bucket()
                    .bucket(&name)
                    .set_create_bucket_configuration(config)
                    .send()
                    .await
                    .map_err(aws_err(format!("create bucket {name}")))?;
                self.report
                    .record(format!("bucket {name}"), Change::Created);
            }
            Err(e) => return Err(aws_err(format!("look up bucket {name}"))(e)),
        }
        Ok(())
    }
}

/// Every topic ARN in the account and region.
pub(crate) async fn list_topic_arns(sns: &sns::Client) -> Result<Vec<String>, ProvisionError> {
    let mut arns = Vec::new();
    let mut token = None;
    loop {
        let page = sns
            .list_topics()
            .set_next_token(token)
            .send()
            .await
            .map_err(aws_err("list topics"))?;
        arns.extend(
            page.topics()
                .iter()
                .filter_map(|t| t.topic_arn().map(str::to_owned)),
        );
        token = page.next_token;
        if token.is_none() {
            return Ok(arns);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_topics_get_their_suffix_once() {
        assert_eq!(topic_resource_name("images", true), "images.fifo");
        assert_eq!(topic_resource_name("images.fifo", true), "images.fifo");
        assert_eq!(topic_resource_name("images", false), "images");
    }

    #[test]
    fn json_attributes_compare_by_value() {
        assert!(same_json(Some(r#"{"a": [1, 2]}"#), r#"{"a":[1,2]}"#));
        assert!(!same_json(Some(r#"{"a": [2, 1]}"#), r#"{"a":[1,2]}"#));
        assert!(!same_json(None, "{}"));
    }

    #[test]
    fn arns_split_into_region_and_account() {
        assert_eq!(
            arn_parts("arn:aws:sqs:eu-west-1:123456789012:q"),
            Some(("eu-west-1", "123456789012"))
        );
        assert_eq!(arn_parts("nope"), None);
    }
}
