//! Waiting for async tasks: `DescribeTaskStatus` polled fast at first (most listener tasks finish in well under a
//! second), then less often, until a deadline. bcs sleeps 2 s between polls; that alone costs every change seconds.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;
use tracing::debug;

use super::client::ClbClient;
use super::error::CloudError;

/// Poll intervals for `DescribeTaskStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskPollPolicy {
    pub initial_interval: Duration,
    pub max_interval: Duration,
}

impl Default for TaskPollPolicy {
    fn default() -> Self {
        TaskPollPolicy {
            initial_interval: Duration::from_millis(20),
            max_interval: Duration::from_secs(1),
        }
    }
}

impl TaskPollPolicy {
    /// The wait after poll number `poll` (0-based): doubles from the initial interval up to the maximum.
    pub fn interval(&self, poll: u32) -> Duration {
        let factor = 2u32.saturating_pow(poll.min(31));
        self.initial_interval
            .saturating_mul(factor)
            .min(self.max_interval)
    }
}

/// What one `DescribeTaskStatus` answer means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskState {
    Succeeded,
    Failed(String),
    Running,
    Unknown(i64),
}

/// Reads `Status` (0 ok, 1 failed with `Message`, 2 running) from a DescribeTaskStatus response.
pub fn task_state(response: &Value) -> Option<TaskState> {
    let status = response.get("Status")?.as_i64()?;
    Some(match status {
        0 => TaskState::Succeeded,
        1 => TaskState::Failed(
            response
                .get("Message")
                .and_then(Value::as_str)
                .unwrap_or("task failed without a message")
                .to_string(),
        ),
        2 => TaskState::Running,
        other => TaskState::Unknown(other),
    })
}

impl ClbClient {
    /// Polls the task `request_id` (the RequestId of the async call, named `action` in errors) until it ends or
    /// `deadline` passes.
    pub async fn wait_task(
        &self,
        region: &str,
        action: &str,
        request_id: &str,
        deadline: Instant,
    ) -> Result<(), CloudError> {
        let policy = self.config().task_poll;
        let started = Instant::now();
        let mut poll = 0u32;
        loop {
            let response = self
                .call_json_until(
                    region,
                    "DescribeTaskStatus",
                    &json!({ "TaskId": request_id }),
                    deadline,
                )
                .await?;
            let state = task_state(&response).ok_or_else(|| CloudError::Decode {
                action: "DescribeTaskStatus".into(),
                request_id: request_id.to_string(),
                message: "no integer Status in the response".into(),
            })?;
            match state {
                TaskState::Succeeded => {
                    self.metrics()
                        .observe_task(action, "succeeded", started.elapsed());
                    debug!(
                        action,
                        task_id = request_id,
                        polls = poll + 1,
                        "task succeeded"
                    );
                    return Ok(());
                }
                TaskState::Failed(message) => {
                    self.metrics()
                        .observe_task(action, "failed", started.elapsed());
                    return Err(CloudError::TaskFailed {
                        action: action.to_string(),
                        task_id: request_id.to_string(),
                        message,
                    });
                }
                TaskState::Unknown(status) => {
                    self.metrics()
                        .observe_task(action, "unknown", started.elapsed());
                    return Err(CloudError::TaskStatusUnknown {
                        action: action.to_string(),
                        task_id: request_id.to_string(),
                        status,
                    });
                }
                TaskState::Running => {}
            }
            let next = Instant::now() + policy.interval(poll);
            if next >= deadline {
                self.metrics()
                    .observe_task(action, "timeout", started.elapsed());
                return Err(CloudError::TaskTimeout {
                    action: action.to_string(),
                    task_id: request_id.to_string(),
                });
            }
            tokio::time::sleep_until(next).await;
            poll += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_interval_starts_fast_and_caps() {
        let p = TaskPollPolicy::default();
        let got: Vec<u128> = (0..10).map(|i| p.interval(i).as_millis()).collect();
        assert_eq!(got, [20, 40, 80, 160, 320, 640, 1000, 1000, 1000, 1000]);
        assert_eq!(p.interval(u32::MAX), Duration::from_secs(1));
    }

    #[test]
    fn status_codes_map_to_states() {
        assert_eq!(
            task_state(&json!({"Status": 0})),
            Some(TaskState::Succeeded)
        );
        assert_eq!(
            task_state(&json!({"Status": 2, "Message": null})),
            Some(TaskState::Running)
        );
        assert_eq!(
            task_state(&json!({"Status": 1, "Message": "port in use"})),
            Some(TaskState::Failed("port in use".into()))
        );
        assert_eq!(
            task_state(&json!({"Status": 7})),
            Some(TaskState::Unknown(7))
        );
        assert_eq!(task_state(&json!({"Status": "0"})), None);
        assert_eq!(task_state(&json!({})), None);
    }
}
