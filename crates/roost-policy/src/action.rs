//! The data-plane actions AWS IoT checks at run time, and sets of them.
//!
//! A statement's `Action`/`NotAction` list is turned into an [`ActionSet`] once, at
//! parse time, because the set of actions Roost can be asked about is closed: the
//! broker then tests one bit instead of matching globs. Action names from other
//! services (`greengrass:*`) or unknown `iot:` names are accepted, as AWS accepts
//! them, and simply match none of these actions.

use crate::glob::Pattern;

/// An action a connected principal can be authorized for (reference table 1.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    Connect,
    Publish,
    RetainPublish,
    Subscribe,
    Receive,
    GetRetainedMessage,
    ListRetainedMessages,
    GetThingShadow,
    UpdateThingShadow,
    DeleteThingShadow,
    ListNamedShadowsForThing,
    DescribeJobExecution,
    GetPendingJobExecutions,
    StartNextPendingJobExecution,
    UpdateJobExecution,
    AssumeRoleWithCertificate,
}

impl Action {
    /// Every action, in declaration order.
    pub const ALL: [Action; 16] = [
        Action::Connect,
        Action::Publish,
        Action::RetainPublish,
        Action::Subscribe,
        Action::Receive,
        Action::GetRetainedMessage,
        Action::ListRetainedMessages,
        Action::GetThingShadow,
        Action::UpdateThingShadow,
        Action::DeleteThingShadow,
        Action::ListNamedShadowsForThing,
        Action::DescribeJobExecution,
        Action::GetPendingJobExecutions,
        Action::StartNextPendingJobExecution,
        Action::UpdateJobExecution,
        Action::AssumeRoleWithCertificate,
    ];

    pub(crate) const COUNT: usize = Action::ALL.len();

    /// The IAM name, e.g. `"iot:Publish"`.
    pub fn name(&self) -> &'static str {
        match self {
            Action::Connect => "iot:Connect",
            Action::Publish => "iot:Publish",
            Action::RetainPublish => "iot:RetainPublish",
            Action::Subscribe => "iot:Subscribe",
            Action::Receive => "iot:Receive",
            Action::GetRetainedMessage => "iot:GetRetainedMessage",
            Action::ListRetainedMessages => "iot:ListRetainedMessages",
            Action::GetThingShadow => "iot:GetThingShadow",
            Action::UpdateThingShadow => "iot:UpdateThingShadow",
            Action::DeleteThingShadow => "iot:DeleteThingShadow",
            Action::ListNamedShadowsForThing => "iot:ListNamedShadowsForThing",
            Action::DescribeJobExecution => "iot:DescribeJobExecution",
            Action::GetPendingJobExecutions => "iot:GetPendingJobExecutions",
            Action::StartNextPendingJobExecution => "iot:StartNextPendingJobExecution",
            Action::UpdateJobExecution => "iot:UpdateJobExecution",
            Action::AssumeRoleWithCertificate => "iot:AssumeRoleWithCertificate",
        }
    }

    /// The action named `name` (`"iot:Publish"`, any case, as IAM compares action
    /// names), e.g. for TestAuthorization's `actionType`-derived names.
    pub fn from_name(name: &str) -> Option<Action> {
        Action::ALL
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(name))
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }

    fn bit(self) -> u32 {
        1 << (self as u32)
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A set of [`Action`]s, one bit each.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct ActionSet(u32);

impl ActionSet {
    pub(crate) fn contains(self, action: Action) -> bool {
        self.0 & action.bit() != 0
    }

    pub(crate) fn complement(self) -> ActionSet {
        let all = Action::ALL.iter().fold(0, |acc, a| acc | a.bit());
        ActionSet(all & !self.0)
    }

    /// The actions matched by one `Action` entry. IAM compares action names
    /// case-insensitively, prefix included, so both sides are lower-cased.
    pub(crate) fn matching(entry: &str) -> ActionSet {
        let pattern = Pattern::glob(&entry.to_lowercase());
        let mut set = 0;
        for action in Action::ALL {
            if pattern.matches(&action.name().to_lowercase()) {
                set |= action.bit();
            }
        }
        ActionSet(set)
    }

    pub(crate) fn union(self, other: ActionSet) -> ActionSet {
        ActionSet(self.0 | other.0)
    }
}

/// Why an `Action` entry is not even shaped like an action, or `None` if it is.
/// The shape is `*` or `service:name`, as in IAM.
pub(crate) fn shape_error(entry: &str) -> Option<String> {
    if entry == "*" {
        return None;
    }
    match entry.split_once(':') {
        Some((service, name)) if !service.is_empty() && !name.is_empty() => None,
        _ => Some("expected an action such as \"iot:Publish\", \"iot:*\" or \"*\"".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for action in Action::ALL {
            assert_eq!(Action::from_name(action.name()), Some(action));
            assert_eq!(action.to_string(), action.name());
            assert_eq!(Action::ALL[action.index()], action);
        }
        assert_eq!(Action::from_name("IOT:publish"), Some(Action::Publish));
        assert_eq!(Action::from_name("iot:Nope"), None);
    }

    #[test]
    fn entries_match_case_insensitively_with_globs() {
        let set = ActionSet::matching("IoT:publish");
        assert!(set.contains(Action::Publish));
        assert!(!set.contains(Action::RetainPublish));

        let set = ActionSet::matching("iot:*");
        assert!(Action::ALL.iter().all(|a| set.contains(*a)));
        assert_eq!(ActionSet::matching("*"), set);

        let set = ActionSet::matching("iot:Get*");
        assert!(set.contains(Action::GetThingShadow));
        assert!(set.contains(Action::GetRetainedMessage));
        assert!(set.contains(Action::GetPendingJobExecutions));
        assert!(!set.contains(Action::Publish));

        let set = ActionSet::matching("iot:*Publish");
        assert!(set.contains(Action::Publish) && set.contains(Action::RetainPublish));

        assert_eq!(ActionSet::matching("greengrass:*"), ActionSet::default());
        assert_eq!(ActionSet::matching("iot:Publlish"), ActionSet::default());
    }

    #[test]
    fn complement_stays_within_known_actions() {
        let not_publish = ActionSet::matching("iot:Publish").complement();
        assert!(!not_publish.contains(Action::Publish));
        assert!(not_publish.contains(Action::Receive));
        assert_eq!(ActionSet::matching("*").complement(), ActionSet::default());
    }

    #[test]
    fn shapes() {
        assert!(shape_error("*").is_none());
        assert!(shape_error("iot:Publish").is_none());
        assert!(shape_error("Publish").is_some());
        assert!(shape_error(":Publish").is_some());
        assert!(shape_error("iot:").is_some());
    }
}
