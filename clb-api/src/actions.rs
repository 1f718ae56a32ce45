//! The CLB actions this project uses: which are asynchronous (poll DescribeTaskStatus) and their schemas.

use crate::schema::{self, Field};

/// API version every action belongs to.
pub const VERSION: &str = "2018-03-17";
pub const SERVICE: &str = "clb";

#[derive(Debug, Clone, Copy)]
pub struct ActionSpec {
    pub name: &'static str,
    /// Returns at once; the RequestId is a TaskId for DescribeTaskStatus.
    pub is_async: bool,
    /// Changes state, so it takes the per-LB task lock.
    pub mutating: bool,
    pub fields: &'static [Field],
}

const fn spec(
    name: &'static str,
    is_async: bool,
    mutating: bool,
    fields: &'static [Field],
) -> ActionSpec {
    ActionSpec {
        name,
        is_async,
        mutating,
        fields,
    }
}

pub const ACTIONS: &[ActionSpec] = &[
    spec(
        "DescribeLoadBalancers",
        false,
        false,
        schema::DESCRIBE_LOAD_BALANCERS,
    ),
    spec(
        "CreateLoadBalancer",
        true,
        true,
        schema::CREATE_LOAD_BALANCER,
    ),
    spec(
        "DeleteLoadBalancer",
        true,
        true,
        schema::DELETE_LOAD_BALANCER,
    ),
    spec("DescribeQuota", false, false, schema::DESCRIBE_QUOTA),
    spec("CreateListener", true, true, schema::CREATE_LISTENER),
    spec(
        "DescribeListeners",
        false,
        false,
        schema::DESCRIBE_LISTENERS,
    ),
    spec("DeleteListener", true, true, schema::DELETE_LISTENER),
    spec(
        "DeleteLoadBalancerListeners",
        true,
        true,
        schema::DELETE_LOAD_BALANCER_LISTENERS,
    ),
    spec("ModifyListener", true, true, schema::MODIFY_LISTENER),
    spec("CreateRule", true, true, schema::CREATE_RULE),
    spec("DeleteRule", true, true, schema::DELETE_RULE),
    spec("ModifyRule", true, true, schema::MODIFY_RULE),
    spec(
        "ModifyDomainAttributes",
        true,
        true,
        schema::MODIFY_DOMAIN_ATTRIBUTES,
    ),
    spec("RegisterTargets", true, true, schema::REGISTER_TARGETS),
    spec("DeregisterTargets", true, true, schema::REGISTER_TARGETS),
    spec(
        "ModifyTargetWeight",
        true,
        true,
        schema::MODIFY_TARGET_WEIGHT,
    ),
    spec("BatchRegisterTargets", false, true, schema::BATCH_TARGETS),
    spec("BatchDeregisterTargets", false, true, schema::BATCH_TARGETS),
    spec(
        "BatchModifyTargetWeight",
        true,
        true,
        schema::BATCH_MODIFY_TARGET_WEIGHT,
    ),
    spec("DescribeTargets", false, false, schema::DESCRIBE_TARGETS),
    spec(
        "DescribeTargetHealth",
        false,
        false,
        schema::DESCRIBE_TARGET_HEALTH,
    ),
    spec(
        "DescribeTaskStatus",
        false,
        false,
        schema::DESCRIBE_TASK_STATUS,
    ),
];

/// Looks an action up by its exact name (the API is case-sensitive).
pub fn find(name: &str) -> Option<&'static ActionSpec> {
    ACTIONS.iter().find(|a| a.name == name)
}

#[cfg(test)]
mod tests {
    #[test]
    fn lookup() {
        assert!(super::find("CreateListener").unwrap().is_async);
        assert!(!super::find("BatchRegisterTargets").unwrap().is_async);
        assert!(super::find("BatchRegisterTargets").unwrap().mutating);
        assert!(super::find("createlistener").is_none());
        assert_eq!(super::ACTIONS.len(), 22);
    }
}
