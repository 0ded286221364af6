//! Whether a round of pings reached as many environments as it asked for, and how long the
//! next round holds them.
//!
//! A round's pings each hold their environment for [`ROUND_HOLD`](super::ROUND_HOLD) so that
//! they overlap; if one ping reaches Lambda after another's hold has ended, Lambda gives it
//! the environment that ping just freed, and one environment of the pool goes unrefreshed
//! (and may be reclaimed before it is needed). How far apart a round's pings arrive depends
//! on the network between the gateway and Lambda, which no constant can know. So a handler
//! that answers a ping names its environment (`{"environment": "<id>"}`: on Lambda,
//! `context.log_stream_name` is one per execution environment), the gateway checks each
//! round for an environment named twice, and [`RoundHold`] lengthens the hold when a round
//! fell short and shortens it again, never below the configured hold, after a run of rounds
//! that did not.
//!
//! Only the gateway checks rounds: the simulator's pings reach the platform at one instant,
//! so its rounds never fall short.

use std::collections::HashSet;
use std::time::Duration;

/// Clean rounds at a lengthened hold after which the hold is halved again: a spell of
/// jitter should not cost every round after it a long hold, and a hold still too short
/// shows again within a round or two.
pub const CLEAN_ROUNDS_TO_SHORTEN: u32 = 32;

/// What one round's answers say: pings that ran, how many of those named their environment,
/// and how many distinct environments they named.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RoundCheck {
    pub answered: u32,
    pub named: u32,
    pub distinct: u32,
}

/// The environment a ping's handler named in its answer (`{"environment": "<id>"}`, the
/// convention README gives handlers), if it named one.
pub fn environment_named(answer: &[u8]) -> Option<String> {
    let answer: serde_json::Value = serde_json::from_slice(answer).ok()?;
    Some(answer.get("environment")?.as_str()?.to_string())
}

/// What one ping of a round came back with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reached<'a> {
    /// It did not run (refused, or failed before the function ran).
    NotRun,
    /// It ran; its answer named no environment.
    Unnamed,
    /// It ran in the environment its handler named.
    Environment(&'a str),
}

impl RoundCheck {
    /// Checks a round from what each of its pings came back with.
    pub fn of<'a>(answers: impl IntoIterator<Item = Reached<'a>>) -> Self {
        let mut check = Self::default();
        let mut seen = HashSet::new();
        for answer in answers {
            match answer {
                Reached::NotRun => continue,
                Reached::Unnamed => {}
                Reached::Environment(environment) => {
                    check.named += 1;
                    check.distinct += u32::from(seen.insert(environment));
                }
            }
            check.answered += 1;
        }
        check
    }

    /// Pings that reached an environment another ping of the round had already reached:
    /// the environments the round missed.
    pub fn repeated(&self) -> u32 {
        self.named - self.distinct
    }

    /// Whether the round can be judged: at least two pings ran, and every one that ran named
    /// its environment (a handler that names none cannot be checked).
    pub fn judged(&self) -> bool {
        self.answered >= 2 && self.named == self.answered
    }
}

/// What a round's check did to the hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldChange {
    /// Not judged, or judged and nothing to change.
    Kept,
    /// A round fell short: the hold doubled, up to the most.
    Lengthened,
    /// A run of clean rounds: the hold halved, down to the least.
    Shortened,
}

/// The hold a function's rounds ask for, between `least` (the configured hold) and `most`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoundHold {
    least: Duration,
    most: Duration,
    current: Duration,
    clean: u32,
}

impl RoundHold {
    /// Starts at `least`; `most` below `least` is taken as `least` (no adapting).
    pub fn new(least: Duration, most: Duration) -> Self {
        Self {
            least,
            most: most.max(least),
            current: least,
            clean: 0,
        }
    }

    /// The function's base hold: what a round asks for before its size adds to it.
    pub fn hold(&self) -> Duration {
        self.current
    }

    /// The hold each ping of the next round of `count` asks for: the base hold and what the
    /// round's size adds ([`round_hold`](super::round_hold)), never above the most.
    pub fn for_round(&self, count: u32) -> Duration {
        super::round_hold(self.current, count).min(self.most)
    }

    /// Learns from a round's answers.
    pub fn after(&mut self, check: &RoundCheck) -> HoldChange {
        if !check.judged() {
            return HoldChange::Kept;
        }
        if check.repeated() > 0 {
            self.clean = 0;
            let longer = (self.current * 2)
                .max(Duration::from_millis(1))
                .min(self.most);
            if longer == self.current {
                return HoldChange::Kept;
            }
            self.current = longer;
            return HoldChange::Lengthened;
        }
        if self.current == self.least {
            return HoldChange::Kept;
        }
        self.clean += 1;
        if self.clean < CLEAN_ROUNDS_TO_SHORTEN {
            return HoldChange::Kept;
        }
        self.clean = 0;
        self.current = (self.current / 2).max(self.least);
        HoldChange::Shortened
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn check(environments: &[&'static str]) -> RoundCheck {
        RoundCheck::of(environments.iter().map(|e| Reached::Environment(e)))
    }

    #[test]
    fn a_round_counts_the_environments_its_answers_name() {
        let round = RoundCheck::of([
            Reached::Environment("a"),
            Reached::Environment("b"),
            Reached::Environment("a"),
            Reached::NotRun,
            Reached::Unnamed,
        ]);
        assert_eq!(
            round,
            RoundCheck {
                answered: 4,
                named: 3,
                distinct: 2
            }
        );
        assert_eq!(round.repeated(), 1);
        // One ping ran but named nothing: the round cannot be judged.
        assert!(!round.judged());
        assert!(check(&["a", "b"]).judged());
        assert!(!check(&["a"]).judged(), "a lone ping is never a round");
    }

    #[test]
    fn a_larger_round_holds_longer_and_never_past_the_most() {
        use crate::policy::{round_hold, ROUND_HOLD};
        // Whole milliseconds, rounded up: what a handler reads and Lambda bills.
        assert_eq!(round_hold(ROUND_HOLD, 2), 6 * MS);
        assert_eq!(round_hold(ROUND_HOLD, 8), 7 * MS);
        assert_eq!(round_hold(ROUND_HOLD, 64), 21 * MS);
        let mut hold = RoundHold::new(ROUND_HOLD, 20 * MS);
        assert_eq!(hold.for_round(8), 7 * MS);
        assert_eq!(hold.for_round(64), 20 * MS, "capped at the most");
        // A short round doubles the base; the size adds to it as before.
        assert_eq!(hold.after(&check(&["a", "a"])), HoldChange::Lengthened);
        assert_eq!(hold.hold(), 10 * MS);
        assert_eq!(hold.for_round(8), 12 * MS);
    }

    #[test]
    fn an_answer_names_its_environment_or_not() {
        let named = br#"{"warmgate":"pong","environment":"2026/12/02/[$LATEST]ab12"}"#;
        assert_eq!(
            environment_named(named).as_deref(),
            Some("2026/12/02/[$LATEST]ab12")
        );
        assert_eq!(environment_named(br#"{"warmgate":"pong"}"#), None);
        assert_eq!(environment_named(br#"{"environment":7}"#), None);
        assert_eq!(environment_named(b"pong"), None);
    }

    #[test]
    fn a_round_that_fell_short_doubles_the_hold_up_to_the_most() {
        let mut hold = RoundHold::new(25 * MS, 100 * MS);
        assert_eq!(hold.hold(), 25 * MS);
        assert_eq!(hold.after(&check(&["a", "a", "b"])), HoldChange::Lengthened);
        assert_eq!(hold.hold(), 50 * MS);
        assert_eq!(hold.after(&check(&["a", "a"])), HoldChange::Lengthened);
        assert_eq!(hold.hold(), 100 * MS);
        assert_eq!(hold.after(&check(&["a", "a"])), HoldChange::Kept);
        assert_eq!(hold.hold(), 100 * MS);
    }

    #[test]
    fn a_run_of_clean_rounds_halves_it_again_never_below_the_least() {
        let mut hold = RoundHold::new(25 * MS, 400 * MS);
        hold.after(&check(&["a", "a"]));
        hold.after(&check(&["a", "a"]));
        assert_eq!(hold.hold(), 100 * MS);
        for _ in 1..CLEAN_ROUNDS_TO_SHORTEN {
            assert_eq!(hold.after(&check(&["a", "b"])), HoldChange::Kept);
        }
        assert_eq!(hold.after(&check(&["a", "b"])), HoldChange::Shortened);
        assert_eq!(hold.hold(), 50 * MS);
        // A round that falls short starts the count again.
        for _ in 1..CLEAN_ROUNDS_TO_SHORTEN {
            hold.after(&check(&["a", "b"]));
        }
        assert_eq!(hold.after(&check(&["a", "a"])), HoldChange::Lengthened);
        assert_eq!(hold.hold(), 100 * MS);
        for _ in 0..4 * CLEAN_ROUNDS_TO_SHORTEN {
            hold.after(&check(&["a", "b"]));
        }
        assert_eq!(hold.hold(), 25 * MS);
    }

    #[test]
    fn rounds_it_cannot_judge_change_nothing() {
        let mut hold = RoundHold::new(25 * MS, 400 * MS);
        let unnamed = RoundCheck::of([Reached::Unnamed, Reached::Unnamed]);
        assert_eq!(hold.after(&unnamed), HoldChange::Kept);
        assert_eq!(hold.after(&check(&["a"])), HoldChange::Kept);
        assert_eq!(hold.hold(), 25 * MS);
    }

    #[test]
    fn a_most_below_the_least_turns_adapting_off() {
        let mut hold = RoundHold::new(25 * MS, 10 * MS);
        assert_eq!(hold.after(&check(&["a", "a"])), HoldChange::Kept);
        assert_eq!(hold.hold(), 25 * MS);
    }

    #[test]
    fn a_zero_hold_still_grows() {
        let mut hold = RoundHold::new(Duration::ZERO, 8 * MS);
        assert_eq!(hold.after(&check(&["a", "a"])), HoldChange::Lengthened);
        assert_eq!(hold.hold(), MS);
    }
}
