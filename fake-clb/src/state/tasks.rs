//! Async tasks and the one-task-per-load-balancer lock: creation, settling by timestamps, release of hung
//! tasks, DescribeTaskStatus, and `mutate_lb`, through which every mutating action goes.

use super::*;

impl State {
    /// Completes every task whose time has come: rolls back failed ones, marks created LBs running.
    /// Returns whether anything changed.
    pub fn settle(&mut self, now_ms: u64) -> bool {
        let due: Vec<TaskRef> = self
            .pending
            .iter()
            .filter(|r| {
                self.accounts
                    .get(&r.secret_id)
                    .and_then(|a| a.regions.get(&r.region))
                    .and_then(|g| g.tasks.get(&r.task_id))
                    .is_none_or(|t| t.done_ms.is_some_and(|d| d <= now_ms))
            })
            .cloned()
            .collect();
        for r in &due {
            self.pending.remove(r);
            let Some(region) = self
                .accounts
                .get_mut(&r.secret_id)
                .and_then(|a| a.regions.get_mut(&r.region))
            else {
                continue;
            };
            let Some(task) = region.tasks.get_mut(&r.task_id) else {
                continue;
            };
            task.settled = true;
            let task = task.clone();
            if task.fail_message.is_some() {
                match task.rollback {
                    Some(Rollback::Restore(lbs)) => {
                        for mut lb in lbs {
                            lb.current_task = None;
                            region
                                .load_balancers
                                .insert(lb.load_balancer_id.clone(), lb);
                        }
                    }
                    Some(Rollback::Remove(ids)) => {
                        for id in ids {
                            region.load_balancers.remove(&id);
                        }
                    }
                    None => {}
                }
            } else {
                for id in &task.load_balancer_ids {
                    if let Some(lb) = region.load_balancers.get_mut(id) {
                        lb.status = 1;
                    }
                }
            }
            for lb in region.load_balancers.values_mut() {
                if lb.current_task.as_deref() == Some(task.task_id.as_str()) {
                    lb.current_task = None;
                }
            }
            if let Some(t) = region.tasks.get_mut(&r.task_id) {
                t.rollback = None;
            }
        }
        !due.is_empty()
    }

    /// Lets hanging tasks finish now (their fault was cleared).
    pub fn release_hung_tasks(&mut self, now_ms: u64) -> bool {
        let mut changed = false;
        for r in self.pending.clone() {
            if let Some(t) = self
                .accounts
                .get_mut(&r.secret_id)
                .and_then(|a| a.regions.get_mut(&r.region))
                .and_then(|g| g.tasks.get_mut(&r.task_id))
                && t.done_ms.is_none()
            {
                t.done_ms = Some(now_ms);
                changed = true;
            }
        }
        self.settle(now_ms) || changed
    }

    /// Tasks still in progress (for the metrics gauge).
    pub fn tasks_in_progress(&self) -> usize {
        self.pending.len()
    }

    pub(super) fn new_task(
        &mut self,
        ctx: &Ctx,
        action: &str,
        lb_id: Option<&str>,
        duration_ms: u64,
        rollback: Option<Rollback>,
    ) -> Task {
        let (done_ms, fail_message) = match &ctx.task_mode {
            TaskMode::Normal => (Some(ctx.now_ms + duration_ms), None),
            TaskMode::Fail(m) => (Some(ctx.now_ms + duration_ms), Some(m.clone())),
            TaskMode::Hang => (None, None),
        };
        Task {
            task_id: ctx.request_id.to_string(),
            action: action.to_string(),
            load_balancer_id: lb_id.map(str::to_string),
            created_ms: ctx.now_ms,
            done_ms,
            settled: false,
            rollback: if fail_message.is_some() {
                rollback
            } else {
                None
            },
            fail_message,
            load_balancer_ids: Vec::new(),
            deal_name: None,
        }
    }

    pub(super) fn insert_task(&mut self, ctx: &Ctx, task: Task) {
        let task_ref = TaskRef {
            secret_id: ctx.secret_id.to_string(),
            region: ctx.region.to_string(),
            task_id: task.task_id.clone(),
        };
        let region = self.region_mut(ctx);
        if region.tasks.len() >= MAX_TASKS_PER_REGION {
            let cutoff = ctx.now_ms.saturating_sub(TASK_RETENTION_MS);
            region
                .tasks
                .retain(|_, t| !t.settled || t.created_ms >= cutoff);
        }
        region.tasks.insert(task.task_id.clone(), task);
        self.pending.insert(task_ref);
    }

    /// Runs `f` on a copy of the LB; on success the copy replaces it and, for async actions, a task
    /// locks the LB until it ends. Errors leave the LB untouched.
    pub(super) fn mutate_lb<R>(
        &mut self,
        ctx: &Ctx,
        action: &str,
        lb_id: &str,
        is_async: bool,
        f: impl FnOnce(&mut State, &mut LoadBalancer) -> Result<R, ApiError>,
    ) -> Result<R, ApiError> {
        let lb = self.lb(ctx, lb_id)?;
        if self.is_busy(ctx, lb) {
            return Err(ApiError::resource_in_operating(lb_id));
        }
        let mut copy = lb.clone();
        let out = f(self, &mut copy)?;
        let duration = ctx.limits.task_duration.as_millis() as u64;
        if is_async {
            copy.current_task = Some(ctx.request_id.to_string());
            // Only a task scripted to fail needs the snapshot to roll back to.
            let rollback = match ctx.task_mode {
                TaskMode::Fail(_) => Some(Rollback::Restore(vec![self.lb(ctx, lb_id)?.clone()])),
                _ => None,
            };
            let task = self.new_task(ctx, action, Some(lb_id), duration, rollback);
            self.insert_task(ctx, task);
        } else {
            copy.busy_until_ms = ctx.now_ms + ctx.limits.batch_busy_tail.as_millis() as u64;
        }
        self.region_mut(ctx)
            .load_balancers
            .insert(lb_id.to_string(), copy);
        Ok(out)
    }

    pub(super) fn describe_task_status(
        &self,
        ctx: &Ctx,
        r: model::DescribeTaskStatusRequest,
    ) -> Result<Value, ApiError> {
        let region = self.region(ctx);
        let task = match (&r.task_id, &r.deal_name) {
            (Some(id), _) => region
                .and_then(|g| g.tasks.get(id))
                .ok_or_else(|| ApiError::invalid_parameter(format!("TaskId {id} not found."))),
            (None, Some(deal)) => region
                .and_then(|g| {
                    g.tasks
                        .values()
                        .find(|t| t.deal_name.as_deref() == Some(deal.as_str()))
                })
                .ok_or_else(|| ApiError::invalid_parameter(format!("DealName {deal} not found."))),
            (None, None) => Err(ApiError::missing_parameter("TaskId")),
        }?;
        Ok(to_value(&model::DescribeTaskStatusResponse {
            status: task.status(),
            load_balancer_ids: (!task.load_balancer_ids.is_empty())
                .then(|| task.load_balancer_ids.clone()),
            message: task.fail_message.clone().filter(|_| task.settled),
            request_id: String::new(),
        }))
    }
}
