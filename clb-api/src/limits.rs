//! Batch limits and parameter ranges of the CLB API: the one place the controller, its planner, the parameter
//! schemas and fake-clb read them from. Each value is what the real API enforces; a call over a limit fails with
//! `InvalidParameterValue.Length` (arrays) or `InvalidParameterValue.Range` (numbers), so clients split their
//! work to stay within them.

/// DescribeLoadBalancers `LoadBalancerIds`: at most 20 ids per call.
pub const DESCRIBE_LOAD_BALANCER_IDS: usize = 20;
/// DeleteLoadBalancer `LoadBalancerIds`: at most 20 ids per call.
pub const DELETE_LOAD_BALANCER_IDS: usize = 20;
/// DescribeListeners `ListenerIds`: at most 100 ids per call.
pub const DESCRIBE_LISTENER_IDS: usize = 100;
/// DescribeTargets `ListenerIds`: at most 20 ids per call.
pub const DESCRIBE_TARGETS_LISTENER_IDS: usize = 20;
/// DescribeTargetHealth `LoadBalancerIds`: at most 30 ids per call.
pub const DESCRIBE_TARGET_HEALTH_LB_IDS: usize = 30;
/// CreateListener `Ports`: the API answers "Length of .Ports should be less than 50", so 49 ports per call.
pub const CREATE_LISTENER_PORTS: usize = 49;
/// DeleteLoadBalancerListeners `ListenerIds`: at most 20 ids per call (an empty list deletes every listener).
pub const DELETE_LISTENER_IDS: usize = 20;
/// RegisterTargets / DeregisterTargets / ModifyTargetWeight `Targets`: at most 20 targets per call.
pub const TARGETS_PER_CALL: usize = 20;
/// BatchRegisterTargets / BatchDeregisterTargets `Targets`: at most 500 targets per call.
pub const BATCH_TARGETS: usize = 500;
/// BatchModifyTargetWeight `ModifyList`: at most 100 rules per call.
pub const WEIGHT_RULES: usize = 100;
/// BatchModifyTargetWeight `ModifyList.N.Targets`: at most 50 targets per rule.
pub const WEIGHT_TARGETS_PER_RULE: usize = 50;
/// BatchModifyTargetWeight: at most 500 targets over all rules of one call.
pub const WEIGHT_TARGETS_TOTAL: usize = 500;
/// CreateRule `Rules` / DeleteRule `LocationIds` per call. Not documented; a listener holds at most 50 rules
/// under the default quota, so one call never needs more.
pub const RULES_PER_CALL: usize = 50;
/// DescribeLoadBalancers `Filters` and DescribeTargets `Filters`: at most 10 filters per call.
pub const FILTERS: usize = 10;
/// `Filters.N.Values`: at most 100 values per filter.
pub const FILTER_VALUES: usize = 100;
/// CreateLoadBalancer `Tags`: at most 20 tags.
pub const TAGS: usize = 20;
/// DescribeLoadBalancers `Limit`: at most 100 load balancers per page.
pub const DESCRIBE_LOAD_BALANCERS_PAGE: i64 = 100;
/// CreateLoadBalancer `Number`: 1 to 20 load balancers per call.
pub const CREATE_LOAD_BALANCER_NUMBER: i64 = 20;

/// Lowest listener and target port.
pub const PORT_MIN: i64 = 1;
/// Highest listener and target port.
pub const PORT_MAX: i64 = 65535;
/// Target weights run from 0 (no new traffic) to 100.
pub const WEIGHT_MAX: i64 = 100;
/// Listener and rule names are 1 to 80 characters.
pub const NAME_MAX_CHARS: usize = 80;

/// Health check `TimeOut` in seconds: 2 to 60, and below `IntervalTime`.
pub const HEALTH_CHECK_TIMEOUT: (i64, i64) = (2, 60);
/// Health check `IntervalTime` in seconds: 2 to 300 (IPv4 load balancers).
pub const HEALTH_CHECK_INTERVAL: (i64, i64) = (2, 300);
/// Health check `HealthNum` / `UnHealthNum`: 2 to 10 probes.
pub const HEALTH_CHECK_PROBES: (i64, i64) = (2, 10);
/// Health check `HttpCode`: a bitmask of the 1xx..5xx classes, 1 to 31.
pub const HEALTH_CHECK_HTTP_CODE: (i64, i64) = (1, 31);
/// Listener `SessionExpireTime` in seconds when session persistence is on: 30 to 3600 (0 turns it off).
pub const SESSION_EXPIRE_TIME: (i64, i64) = (30, 3600);
/// Listener `IdleConnectTimeout` in seconds on a standard load balancer: 10 to 900.
pub const IDLE_CONNECT_TIMEOUT: (i64, i64) = (10, 900);

/// A GET request's query string may be at most 32 KiB.
pub const GET_MAX_BYTES: usize = 32 * 1024;
/// A v1-signed form POST body may be at most 1 MiB.
pub const V1_POST_MAX_BYTES: usize = 1024 * 1024;
/// A TC3-signed JSON POST body may be at most 10 MiB.
pub const TC3_POST_MAX_BYTES: usize = 10 * 1024 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weight_limits_are_consistent() {
        // A full call of full rules must not exceed the per-call total by more than one rule's worth.
        const { assert!(WEIGHT_TARGETS_PER_RULE <= WEIGHT_TARGETS_TOTAL) };
        const { assert!(CREATE_LISTENER_PORTS < 50) };
        assert_eq!(PORT_MAX, u16::MAX as i64);
    }
}
