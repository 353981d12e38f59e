//! The notifier function's role ([`NotifierStore`]) on the fake: a
//! webhook delivery's record, written over the one the notifier read.

use super::{MemoryStore, conflict};
use async_trait::async_trait;
use jobline_core::error::StoreError;
use jobline_core::job::{JobId, JobRecord, WebhookDelivery};
use jobline_core::store::NotifierStore;

#[async_trait]
impl NotifierStore for MemoryStore {
    async fn record_delivery(
        &self,
        id: JobId,
        seen: Option<&WebhookDelivery>,
        delivery: &WebhookDelivery,
    ) -> Result<(), StoreError> {
        self.write("UpdateItem", id, None, |current| match current {
            Some(job)
                if job.state.is_finished()
                    && job.finished_at == Some(delivery.for_finished_at)
                    && job.webhook.as_ref() == seen =>
            {
                Ok(JobRecord {
                    webhook: Some(*delivery),
                    ..job.clone()
                })
            }
            current => Err(conflict(current)),
        })?;
        if delivery.state.is_final() {
            self.hook(id, false);
        }
        Ok(())
    }
}
