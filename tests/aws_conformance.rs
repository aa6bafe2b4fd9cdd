//! The shared per-port conformance suites (`switchyard_shared::conformance`)
//! against the AWS adapters on moto: the same cases the embedded adapters
//! pass. Skipped (with a message) when `SWITCHYARD_MOTO_ENDPOINT` is unset.

mod aws_common;

use std::sync::Arc;

use async_trait::async_trait;
use switchyard_shared::aws::sdk::sqs::types::QueueAttributeName as A;
use switchyard_shared::aws::{AwsClients, SqsQueue, CAPABILITIES};
use switchyard_shared::conformance::{
    blob_suite, queue_suite, stream_suite, table_suite, QueueHarness,
};
use switchyard_shared::embedded::QueueConfig;
use switchyard_shared::ports::{Queue, QueueError};

/// Creates SQS queues (and their DLQs, with a redrive policy) for the queue suite.
struct SqsHarness(AwsClients);

impl SqsHarness {
    async fn create(
        &self,
        name: &str,
        fifo: bool,
        redrive: Option<String>,
    ) -> Result<String, QueueError> {
        let mut req = self.0.sqs.create_queue().queue_name(name);
        if fifo {
            req = req.attributes(A::FifoQueue, "true");
        }
        if let Some(policy) = redrive {
            req = req.attributes(A::RedrivePolicy, policy);
        }
        let url = req
            .send()
            .await
            .map_err(|e| QueueError::Backend(e.to_string()))?
            .queue_url
            .unwrap_or_default();
        let attrs = self
            .0
            .sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(A::QueueArn)
            .send()
            .await;
        attrs
            .ok()
            .and_then(|a| a.attributes)
            .and_then(|mut a| a.remove(&A::QueueArn))
            .ok_or_else(|| QueueError::Backend(format!("no ARN for {name}")))
    }
}

#[async_trait]
impl QueueHarness for SqsHarness {
    async fn create_queue(&self, cfg: &QueueConfig) -> Result<Arc<dyn Queue>, QueueError> {
        let redrive = match &cfg.dead_letter_queue {
            Some(dlq) => {
                let arn = self.create(dlq, cfg.fifo, None).await?;
                Some(serde_json::json!({"deadLetterTargetArn": arn, "maxReceiveCount": cfg.max_receive_count}).to_string())
            }
            None => None,
        };
        self.create(&cfg.name, cfg.fifo, redrive).await?;
        Ok(Arc::new(SqsQueue::connect(&self.0.sqs, &cfg.name).await?))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_and_stream_suites_pass_on_dynamodb() {
    let endpoint = moto_or_skip!();
    let (_, _, r) = aws_common::provisioned(&endpoint).await;
    table_suite(&*r.table, CAPABILITIES).await;
    stream_suite(&*r.table, &*r.stream, CAPABILITIES).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blob_suite_passes_on_s3() {
    let endpoint = moto_or_skip!();
    let (_, _, r) = aws_common::provisioned(&endpoint).await;
    blob_suite(&*r.blobs, CAPABILITIES).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_suite_passes_on_sqs() {
    let endpoint = moto_or_skip!();
    let clients = aws_common::clients(&endpoint).await;
    queue_suite(&SqsHarness(clients), CAPABILITIES).await;
}
