//! The adapters for a provisioned topology: what `switchyard up --backend
//! aws` hands the runtime (the same runtime that drives the embedded backend).

use std::collections::BTreeMap;
use std::sync::Arc;

use router_rules::Topology;
use switchyard_shared::aws::publish::TopicTarget;
use switchyard_shared::aws::{
    AwsClients, AwsPublisher, DynamoStream, DynamoTable, PublishTargets, S3Blobs, SqsQueue,
};
use switchyard_shared::ports::Destination;

use super::{list_topic_arns, topic_resource_name, ProvisionError};

/// Every adapter of the topology, connected to provisioned resources.
#[derive(Debug, Clone)]
pub struct AwsResources {
    pub clients: AwsClients,
    pub table: Arc<DynamoTable>,
    pub stream: Arc<DynamoStream>,
    pub blobs: Arc<S3Blobs>,
    pub publisher: Arc<AwsPublisher>,
    /// consumer name -> its queue.
    pub queues: BTreeMap<String, Arc<SqsQueue>>,
    /// consumer name -> its dead-letter queue.
    pub dlqs: BTreeMap<String, Arc<SqsQueue>>,
    /// stream consumer name -> its on-failure queue.
    pub stream_failures: BTreeMap<String, Arc<SqsQueue>>,
}

impl AwsResources {
    /// Looks every resource up; a missing one is an error that says to run
    /// `switchyard provision` first.
    pub async fn connect(
        topology: &Topology,
        clients: &AwsClients,
    ) -> Result<Self, ProvisionError> {
        let missing = |what: String| {
            move |e: String| {
                ProvisionError::Invalid(format!("{what} is not provisioned ({e}); run `switchyard provision --backend aws` first"))
            }
        };
        let queue = |name: String| async move {
            SqsQueue::connect(&clients.sqs, &name)
                .await
                .map(Arc::new)
                .map_err(|e| missing(format!("queue {name}"))(e.to_string()))
        };
        let mut queues = BTreeMap::new();
        let mut dlqs = BTreeMap::new();
        for c in &topology.consumers {
            // Pollers keep long jobs invisible with a heartbeat, as Lambda's event source mapping does.
            let polled =
                Arc::new(Arc::unwrap_or_clone(queue(c.queue_name()).await?).with_heartbeat());
            queues.insert(c.name.clone(), polled);
            dlqs.insert(c.name.clone(), queue(c.dlq_name()).await?);
        }
        let mut stream_failures = BTreeMap::new();
        for s in &topology.stream_consumers {
            stream_failures.insert(s.name.clone(), queue(s.on_failure_queue()).await?);
        }
        let table_name = &topology.table.name;
        let stream = DynamoStream::connect(clients, table_name)
            .await
            .map_err(|e| missing(format!("the stream of table {table_name}"))(e.to_string()))?;
        Ok(AwsResources {
            clients: clients.clone(),
            table: Arc::new(DynamoTable::new(&clients.dynamodb, table_name)),
            stream: Arc::new(stream),
            blobs: Arc::new(S3Blobs::new(&clients.s3, &topology.bucket.name)),
            publisher: Arc::new(AwsPublisher::new(
                clients,
                publish_targets(topology, clients).await?,
            )),
            queues,
            dlqs,
            stream_failures,
        })
    }
}

/// Routes from the topology, bus names as they are, topic ARNs looked up.
pub async fn publish_targets(
    topology: &Topology,
    clients: &AwsClients,
) -> Result<PublishTargets, ProvisionError> {
    let routes: BTreeMap<String, Destination> = topology
        .routes
        .iter()
        .filter_map(|(t, r)| Some((t.clone(), r.destination()?)))
        .collect();
    let buses = topology
        .buses
        .iter()
        .map(|b| (b.name.clone(), b.name.clone()))
        .collect();
    let arns = list_topic_arns(&clients.sns).await?;
    let mut topics = BTreeMap::new();
    for t in &topology.topics {
        let resource = topic_resource_name(&t.name, t.fifo);
        let arn = arns
            .iter()
            .find(|a| a.rsplit(':').next() == Some(resource.as_str()))
            .ok_or_else(|| {
                ProvisionError::Invalid(format!("topic {resource} is not provisioned; run `switchyard provision --backend aws` first"))
            })?;
        topics.insert(
            t.name.clone(),
            TopicTarget {
                arn: arn.clone(),
                fifo: t.fifo,
            },
        );
    }
    Ok(PublishTargets {
        routes,
        buses,
        topics,
    })
}
