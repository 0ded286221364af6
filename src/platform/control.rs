//! The control plane's calls other than provisioned concurrency's (`provisioned`): what a
//! function's reserved concurrency is, and UpdateAlias (a deployment).

use super::*;

impl Platform {
    /// The function's reserved concurrency (GetFunctionConcurrency).
    pub fn reserved_concurrency(&self, name: &str) -> Result<Option<u32>, ControlError> {
        self.function(name)
            .map(|f| f.spec.reserved_concurrency)
            .ok_or_else(|| ControlError::NotFound(self.not_found_message(name, None)))
    }

    /// UpdateAlias: points `alias` of `function` at `version` (a deployment). Weighted
    /// routing is cleared, as an update without `RoutingConfig` does.
    pub fn update_alias(
        &mut self,
        function: &str,
        alias: &str,
        version: &str,
    ) -> Result<(), String> {
        let &i = self
            .by_name
            .get(function)
            .ok_or(format!("no function {function:?}"))?;
        let function = &mut self.functions[i];
        if function.version_index(version).is_none() {
            return Err(format!("no version {version:?}"));
        }
        let alias = function
            .aliases
            .iter_mut()
            .find(|a| a.name == alias)
            .ok_or(format!("no alias {alias:?}"))?;
        alias.version = version.to_string();
        alias.routing.clear();
        Ok(())
    }
}
