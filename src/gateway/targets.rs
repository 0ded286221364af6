//! Which targets of a function may serve it: resolved through Lambda and checked to run the
//! same code (ARCHITECTURE.md invariant 3).

use crate::lambda::TargetConfig;

/// A target as resolved by GetFunctionConfiguration.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ResolvedTarget {
    pub qualifier: String,
    pub version: String,
    pub code_sha256: String,
    pub memory_mb: u32,
    pub architecture: crate::platform::spec::Architecture,
}

/// The outcome of resolving a function's targets.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct TargetSet {
    /// Targets that may serve, in the configured order of preference.
    pub routable: Vec<ResolvedTarget>,
    /// Why a configured target may not serve (unresolved, or different code).
    pub problems: Vec<String>,
}

impl TargetSet {
    /// Ready when the primary target resolved: it defines the code that answers.
    pub fn is_ready(&self) -> bool {
        !self.routable.is_empty()
    }
}

/// Decides which resolved targets may serve. The first configured target is the primary; a
/// target whose CodeSha256 differs from the primary's is left out, so that warmgate never
/// silently changes which code answers. Pure: the I/O happened before.
pub fn check_equivalence(
    function: &str,
    resolved: Vec<(String, Result<TargetConfig, String>)>,
) -> TargetSet {
    let mut set = TargetSet::default();
    let mut primary_code: Option<String> = None;
    for (i, (qualifier, result)) in resolved.into_iter().enumerate() {
        match result {
            Err(e) => set
                .problems
                .push(format!("{function}:{qualifier} could not be resolved: {e}")),
            Ok(_) if i > 0 && primary_code.is_none() => set.problems.push(format!(
                "{function}:{qualifier} not used: the primary target is unresolved"
            )),
            Ok(t) => {
                let code = primary_code.get_or_insert_with(|| t.code_sha256.clone());
                if *code == t.code_sha256 {
                    set.routable.push(ResolvedTarget {
                        qualifier,
                        version: t.version,
                        code_sha256: t.code_sha256,
                        memory_mb: t.memory_mb,
                        architecture: t.architecture,
                    });
                } else {
                    set.problems.push(format!(
                        "{function}:{qualifier} runs other code (CodeSha256 {} vs the primary's {code}): not used",
                        t.code_sha256
                    ));
                }
            }
        }
    }
    set
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn target(
        qualifier: &str,
        version: &str,
        code: &str,
    ) -> (String, Result<TargetConfig, String>) {
        (
            qualifier.into(),
            Ok(TargetConfig {
                function_name: "f".into(),
                qualifier: Some(qualifier.into()),
                version: version.into(),
                code_sha256: code.into(),
                memory_mb: 1024,
                timeout: Duration::from_secs(3),
                function_arn: "arn".into(),
                architecture: Default::default(),
                runtime: None,
                snap_start: false,
            }),
        )
    }

    #[test]
    fn targets_with_the_primarys_code_serve_others_do_not() {
        let set = check_equivalence(
            "f",
            vec![
                target("live", "1", "A"),
                target("2", "2", "A"),
                target("3", "3", "B"),
            ],
        );
        let routable: Vec<_> = set.routable.iter().map(|t| t.qualifier.as_str()).collect();
        assert_eq!(routable, ["live", "2"]);
        assert_eq!(set.problems.len(), 1);
        assert!(set.problems[0].contains("f:3 runs other code"));
        assert!(set.is_ready());
    }

    #[test]
    fn without_the_primary_nothing_serves() {
        let set = check_equivalence(
            "f",
            vec![("live".into(), Err("404".into())), target("2", "2", "A")],
        );
        assert!(!set.is_ready());
        assert_eq!(set.problems.len(), 2);
    }
}
