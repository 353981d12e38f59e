//! The notifier function's role ([`NotifierStore`]): a webhook delivery's
//! record, written over the one the notifier read.

use super::DynamoJobStore;
use crate::item::{HOOK_SHARD_ATTRIBUTE, n, s, webhook_text};
use async_trait::async_trait;
use jobline_core::error::StoreError;
use jobline_core::job::{JobId, JobState, WebhookDelivery};
use jobline_core::store::NotifierStore;

#[async_trait]
impl NotifierStore for DynamoJobStore {
    async fn record_delivery(
        &self,
        id: JobId,
        seen: Option<&WebhookDelivery>,
        delivery: &WebhookDelivery,
    ) -> Result<(), StoreError> {
        let finished: Vec<JobState> = JobState::ALL
            .into_iter()
            .filter(|state| state.is_finished())
            .collect();
        let states = (0..finished.len())
            .map(|i| format!(":s{i}"))
            .collect::<Vec<_>>()
            .join(", ");
        let seen_condition = match seen {
            None => "attribute_not_exists(webhook)",
            Some(_) => "webhook = :seen",
        };
        let update = if delivery.state.is_final() {
            format!("SET webhook = :next REMOVE {HOOK_SHARD_ATTRIBUTE}")
        } else {
            "SET webhook = :next".to_owned()
        };
        let mut request = self
            .update(id)
            .update_expression(update)
            .condition_expression(format!(
                "#state IN ({states}) AND finishedAt = :for AND {seen_condition}"
            ))
            .expression_attribute_values(":next", s(webhook_text(delivery)))
            .expression_attribute_values(":for", n(delivery.for_finished_at));
        for (i, state) in finished.iter().enumerate() {
            request = request.expression_attribute_values(format!(":s{i}"), s(state.as_str()));
        }
        if let Some(seen) = seen {
            request = request.expression_attribute_values(":seen", s(webhook_text(seen)));
        }
        self.send_update(request).await?;
        Ok(())
    }
}
