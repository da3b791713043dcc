//! The input manifest (`RUNNER_INPUT_MANIFEST_PATH`) in the shape of the command
//! (`RUNNER_COMMAND`): [`ChartInput`] for `install` and `upgrade`, [`UninstallInput`],
//! [`RollbackInput`] ([`HelmInput`]).
//!
//! Each shape is a struct with `deny_unknown_fields`, so a field of another command is refused
//! while the manifest is parsed, with its line and column, as any unknown field is. This module
//! words that refusal: a field another command takes is named with the commands it applies to,
//!
//! ```text
//! input manifest /in/manifest.yaml (RUNNER_INPUT_MANIFEST_PATH): keepHistory applies to
//! uninstall only, not to RUNNER_COMMAND=install at line 4, column 1
//! ```
//!
//! and a field no command takes keeps serde's message (`unknown field `valuez`, expected one of
//! ...`). Which commands take a field is read from the structs themselves (the field names serde
//! derives for them), never from a list kept beside them. Install and upgrade share
//! [`ChartInput`] and accept each other's fields, with one exception, `createNamespace`
//! ([`install::INSTALL_ONLY`]); a field one of them accepts only to ignore it
//! ([`install::ignored_by`]) is said to apply to the other one alone.
//!
//! The framework parses the manifest into [`HelmInput`] before [`prepare`](crate::HelmRunner)
//! runs, with [`HelmInput`]'s [`FromManifest`], which is handed helm-runner's variables
//! ([`HelmVars`]) and picks the command from them; the YAML parser, its budgets and its error
//! positions are the framework's ([`action_runner::manifest`]).

use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{
    self, DeserializeSeed, Deserializer, IgnoredAny, IntoDeserializer, MapAccess, SeqAccess,
    Visitor,
};

use action_runner::{Config, FromManifest, ProcessEnv};

use crate::config::{Command, HelmConfig, HelmVars};
use crate::input::OutputArgs;
use crate::verbs::install::{self, ChartInput};
use crate::verbs::rollback::{RollbackInput, RollbackOutput};
use crate::verbs::uninstall::UninstallInput;

/// The input manifest as `RUNNER_COMMAND` reads it: the [`ActionRunner::Args`] of
/// [`HelmRunner`](crate::HelmRunner).
///
/// Its [`FromManifest`] parses the manifest into the struct of the command `RUNNER_COMMAND`
/// names; another command's field is an error naming it (see the module). [`ForCommand`] parses
/// for a given command instead.
///
/// [`ActionRunner::Args`]: action_runner::ActionRunner::Args
#[derive(Debug, Clone)]
pub enum HelmInput {
    /// `RUNNER_COMMAND=install`.
    Install(ChartInput),
    /// `RUNNER_COMMAND=upgrade`: an install's fields but `createNamespace`.
    Upgrade(ChartInput),
    /// `RUNNER_COMMAND=uninstall`.
    Uninstall(UninstallInput),
    /// `RUNNER_COMMAND=rollback`.
    Rollback(RollbackInput),
    /// `RUNNER_COMMAND` is unset or not a command, or another variable is wrong: the manifest
    /// was checked only for what every command would refuse, and `prepare` refuses the
    /// variable.
    Unchecked,
}

impl HelmInput {
    /// The command whose shape this is; `None` for [`HelmInput::Unchecked`].
    pub fn command(&self) -> Option<Command> {
        match self {
            HelmInput::Install(_) => Some(Command::Install),
            HelmInput::Upgrade(_) => Some(Command::Upgrade),
            HelmInput::Uninstall(_) => Some(Command::Uninstall),
            HelmInput::Rollback(_) => Some(Command::Rollback),
            HelmInput::Unchecked => None,
        }
    }

    /// The manifest's `timeout`, as written (every command has one; empty for
    /// [`HelmInput::Unchecked`]).
    pub fn timeout(&self) -> &str {
        match self {
            HelmInput::Install(i) | HelmInput::Upgrade(i) => &i.timeout,
            HelmInput::Uninstall(i) => &i.timeout,
            HelmInput::Rollback(i) => &i.timeout,
            HelmInput::Unchecked => "",
        }
    }
}

impl FromManifest<HelmVars> for HelmInput {
    /// Parses the manifest for the command the variables name: see [`HelmInput::for_vars`].
    fn from_manifest<'de, D: Deserializer<'de>>(
        config: &Config,
        own: &HelmVars,
        d: D,
    ) -> Result<Self, D::Error> {
        Self::for_vars(own, &config.process, d)
    }
}

impl HelmInput {
    /// Parses the manifest in `d` for the command `RUNNER_COMMAND` names in `vars`, when the
    /// variables are right ([`HelmConfig::new`], with `process`'s `PATH` and `KUBECONFIG`).
    /// When they are wrong, `prepare` refuses them before anything but the manifest's own
    /// errors: the manifest is then checked only for what every command would refuse (a field
    /// no command takes, a value of the wrong type), as the command's (an install's without
    /// one), and is [`HelmInput::Unchecked`].
    ///
    /// # Errors
    /// The deserializer's, as the module says.
    pub fn for_vars<'de, D: Deserializer<'de>>(
        vars: &HelmVars,
        process: &ProcessEnv,
        d: D,
    ) -> Result<Self, D::Error> {
        let named = vars.command.as_deref().and_then(Command::from_name);
        match (named, HelmConfig::new(vars, process)) {
            (Some(command), Ok(_)) => ForCommand(command).deserialize(d),
            (command, _) => {
                Parse(command.unwrap_or(Command::Install), Misplaced::Skip).deserialize(d)?;
                Ok(HelmInput::Unchecked)
            }
        }
    }
}

/// Parses a manifest into [`HelmInput`] for the command it holds, whatever `RUNNER_COMMAND`
/// says (a [`DeserializeSeed`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForCommand(pub Command);

impl<'de> DeserializeSeed<'de> for ForCommand {
    type Value = HelmInput;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<HelmInput, D::Error> {
        Parse(self.0, Misplaced::Refuse).deserialize(d)
    }
}

/// What the parse does with a field another command takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Misplaced {
    /// Refuses it, naming it ([`Place::misplaced`]).
    Refuse,
    /// Skips it (its value unread).
    Skip,
}

/// Parses a manifest into [`HelmInput`] for a command.
struct Parse(Command, Misplaced);

impl<'de> DeserializeSeed<'de> for Parse {
    type Value = HelmInput;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<HelmInput, D::Error> {
        let Parse(command, misplaced) = self;
        Ok(match command {
            Command::Install => HelmInput::Install(parse(d, command, &TOP, misplaced)?),
            Command::Upgrade => HelmInput::Upgrade(parse(d, command, &TOP, misplaced)?),
            Command::Uninstall => HelmInput::Uninstall(parse(d, command, &TOP, misplaced)?),
            Command::Rollback => HelmInput::Rollback(parse(d, command, &TOP, misplaced)?),
        })
    }
}

/// A place in the manifest where the commands take different fields.
pub(crate) struct Place {
    /// How a field of the place is written in messages: `""` (the top level) or `output.`.
    prefix: &'static str,
    /// The fields a command takes here.
    takes: fn(Command) -> Vec<&'static str>,
    /// The fields a command takes here only to ignore them.
    ignores: fn(Command) -> &'static [&'static str],
}

/// The top level of the manifest.
pub(crate) const TOP: Place = Place {
    prefix: "",
    takes: |command| match command {
        Command::Install => fields::<ChartInput>().to_vec(),
        Command::Upgrade => fields::<ChartInput>()
            .iter()
            .filter(|f| !install::INSTALL_ONLY.contains(f))
            .copied()
            .collect(),
        Command::Uninstall => fields::<UninstallInput>().to_vec(),
        Command::Rollback => fields::<RollbackInput>().to_vec(),
    },
    ignores: install::ignored_by,
};

/// `output`.
pub(crate) const OUTPUT: Place = Place {
    prefix: "output.",
    takes: |command| match command {
        Command::Install | Command::Upgrade => fields::<OutputArgs>().to_vec(),
        Command::Rollback => fields::<RollbackOutput>().to_vec(),
        Command::Uninstall => Vec::new(),
    },
    ignores: |_| &[],
};

impl Place {
    /// The refusal of `field` at this place for `command`, when `command` does not take it
    /// and another command does: `keepHistory applies to uninstall only, not to
    /// RUNNER_COMMAND=install`. `None` when `command` takes it, or no command does (serde's
    /// own error names it then).
    fn misplaced(&self, command: Command, field: &str) -> Option<String> {
        if (self.takes)(command).contains(&field) {
            return None;
        }
        let takers: Vec<Command> = Command::ALL
            .into_iter()
            .filter(|c| (self.takes)(*c).contains(&field))
            .collect();
        let applies: Vec<Command> = takers
            .iter()
            .copied()
            .filter(|c| !(self.ignores)(*c).contains(&field))
            .collect();
        let owners = if applies.is_empty() { takers } else { applies };
        let names: Vec<&str> = owners.iter().map(|c| c.as_str()).collect();
        let (last, rest) = names.split_last()?;
        let list = match rest {
            [] => last.to_string(),
            _ => format!("{} and {last}", rest.join(", ")),
        };
        Some(format!(
            "{}{field} applies to {list} only, not to RUNNER_COMMAND={}",
            self.prefix,
            command.as_str()
        ))
    }
}

/// Deserializes struct `T` from `d` as `command` reads it at `place`: as `T`'s own
/// `Deserialize` does, except that a field another command takes there is refused with
/// [`Place::misplaced`]'s words. For a field of `T` that is itself such a place, with
/// `#[serde(deserialize_with)]` ([`crate::verbs::rollback`]'s `output`).
///
/// # Errors
/// The deserializer's: `T`'s own errors, or the refusal (the parser adds the field's line and
/// column).
pub(crate) fn checked<'de, T, D>(
    d: D,
    command: Command,
    place: &'static Place,
) -> Result<T, D::Error>
where
    T: Deserialize<'de>,
    D: Deserializer<'de>,
{
    parse(d, command, place, Misplaced::Refuse)
}

/// [`checked`], with a field of another command refused or skipped (`misplaced`).
fn parse<'de, T, D>(
    d: D,
    command: Command,
    place: &'static Place,
    misplaced: Misplaced,
) -> Result<T, D::Error>
where
    T: Deserialize<'de>,
    D: Deserializer<'de>,
{
    let (name, fields) = shape::<T>();
    let visitor = Checked {
        command,
        place,
        misplaced,
        shape: PhantomData,
    };
    d.deserialize_struct(name, fields, visitor)
}

/// The visitor of [`checked`]: hands the mapping to `T`, each key checked on the way.
struct Checked<T> {
    command: Command,
    place: &'static Place,
    misplaced: Misplaced,
    shape: PhantomData<T>,
}

impl<'de, T: Deserialize<'de>> Visitor<'de> for Checked<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "a mapping of the fields RUNNER_COMMAND={} takes",
            self.command.as_str()
        )
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        T::deserialize(MapAccessDeserializer::new(CheckedMap { map, how: self }))
    }

    /// A sequence, as serde accepts for a struct (its fields in order): `T` says what it makes
    /// of it.
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<T, A::Error> {
        T::deserialize(SeqAccessDeserializer::new(seq))
    }
}

/// The manifest's mapping, each key checked before `T` sees it.
struct CheckedMap<A, T> {
    map: A,
    how: Checked<T>,
}

impl<'de, A: MapAccess<'de>, T> MapAccess<'de> for CheckedMap<A, T> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        let mut seed = Some(seed);
        loop {
            let key = CheckedKey {
                seed: &mut seed,
                command: self.how.command,
                place: self.how.place,
                misplaced: self.how.misplaced,
            };
            match self.map.next_key_seed(key)? {
                Some(Some(key)) => return Ok(Some(key)),
                // Another command's field, skipped: on to the next key, with the same seed.
                Some(None) => {
                    self.map.next_value::<IgnoredAny>()?;
                }
                None => return Ok(None),
            }
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        self.map.next_value_seed(seed)
    }

    fn size_hint(&self) -> Option<usize> {
        self.map.size_hint()
    }
}

/// A key of the manifest: another command's field is refused (or, to skip it, `None`), any
/// other key is handed to `T`'s seed. The error is raised while the parser reads the key, so it
/// carries the key's position.
struct CheckedKey<'s, K> {
    /// `T`'s seed, taken when the key is handed over.
    seed: &'s mut Option<K>,
    command: Command,
    place: &'static Place,
    misplaced: Misplaced,
}

impl<'de, K: DeserializeSeed<'de>> DeserializeSeed<'de> for CheckedKey<'_, K> {
    type Value = Option<K::Value>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<K::Value>, D::Error> {
        let key = d.deserialize_identifier(KeyText)?;
        if let Some(refusal) = self.place.misplaced(self.command, &key) {
            return match self.misplaced {
                Misplaced::Refuse => Err(de::Error::custom(refusal)),
                Misplaced::Skip => Ok(None),
            };
        }
        let seed = self.seed.take().expect("a seed per key handed over");
        seed.deserialize(key.into_deserializer()).map(Some)
    }
}

/// A key's text.
struct KeyText;

impl Visitor<'_> for KeyText {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_string())
    }
}

/// The name and the field names serde derived for struct `T` (as the manifest spells them,
/// after `rename_all`), asked of `T`'s `Deserialize` by a deserializer that only records them.
fn shape<'de, T: Deserialize<'de>>() -> (&'static str, &'static [&'static str]) {
    /// Records what `deserialize_struct` is given, and refuses everything.
    struct Ask<'a>(&'a mut (&'static str, &'static [&'static str]));

    impl<'de> Deserializer<'de> for Ask<'_> {
        type Error = de::value::Error;

        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("not a struct"))
        }

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            name: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = (name, fields);
            Err(de::Error::custom("only the shape was asked"))
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
            option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
            ignored_any
        }
    }

    let mut shape = ("", &[][..]);
    // The error is the point: `T` stops at the first question.
    let _ = T::deserialize(Ask(&mut shape));
    shape
}

/// The field names serde derived for struct `T` ([`shape`]).
fn fields<T: for<'de> Deserialize<'de>>() -> &'static [&'static str] {
    shape::<T>().1
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use action_runner::RunnerError;

    /// `text` parsed as the Manager parses the manifest, for `command`.
    pub(crate) fn parse(command: Command, text: &str) -> Result<HelmInput, RunnerError> {
        serde_saphyr::with_deserializer_from_str_with_options(
            text,
            action_runner::manifest::yaml_options(),
            |d| ForCommand(command).deserialize(d),
        )
        .map_err(|e| RunnerError::invalid_input("m").because(action_runner::manifest::YamlError(e)))
    }

    fn refusal(command: Command, text: &str) -> Option<String> {
        parse(command, text).err().map(|e| e.to_string())
    }

    #[test]
    fn shapes_are_serdes() {
        assert_eq!(shape::<UninstallInput>().0, "UninstallInput");
        assert_eq!(
            fields::<UninstallInput>(),
            ["name", "keepHistory", "noHooks", "wait", "timeout"]
        );
        assert_eq!(fields::<RollbackOutput>(), ["helmRelease"]);
        assert!(!(TOP.takes)(Command::Upgrade).contains(&"createNamespace"));
        assert!((TOP.takes)(Command::Install).contains(&"createNamespace"));
        // The fields install and upgrade ignore are theirs (a typo would go unnoticed).
        for command in Command::ALL {
            for f in (TOP.ignores)(command).iter().chain(install::INSTALL_ONLY) {
                assert!((TOP.takes)(Command::Install).contains(f), "{f}");
            }
        }
    }

    /// Checks each `(command, manifest, refusal)`: the manifest passes (`""`), or is refused on
    /// one line holding `refusal`.
    fn check(cases: &[(Command, &str, &str)]) {
        for (command, text, want) in cases {
            match refusal(*command, text) {
                None if want.is_empty() => {}
                Some(got) if !want.is_empty() && got.contains(want) && got.lines().count() == 1 => {
                }
                got => panic!("{command:?} {text:?}: want {want:?}, got {got:?}"),
            }
        }
    }

    /// Each field is refused for the commands it does not apply to, named with those it applies
    /// to and its position; the commands' own fields pass.
    #[test]
    fn fields_apply_to_their_commands() {
        use Command::{Install, Rollback, Uninstall, Upgrade};
        let only = "applies to install and upgrade only";
        check(&[
            (Uninstall, "keepHistory: true\n", ""),
            (
                Install,
                "name: a\nkeepHistory: true\n",
                "keepHistory applies to uninstall only, not to RUNNER_COMMAND=install at line 2, \
                 column 1",
            ),
            (
                Rollback,
                "revision: 2\nmaxHistory: 3\nname: shop\nwait: false\ntimeout: 1m\nnoHooks: true\n",
                "",
            ),
            (
                Upgrade,
                "revision: 2\n",
                "revision applies to rollback only, not to RUNNER_COMMAND=upgrade",
            ),
            (
                Uninstall,
                "chart: {name: webapp}\n",
                "chart applies to install and upgrade only, not to RUNNER_COMMAND=uninstall",
            ),
            (Rollback, "values: {a: 1}\n", &format!("values {only}")),
            (
                Install,
                "createNamespace: true\nrollbackOnFailure: true\n",
                "",
            ),
            (
                Upgrade,
                "rollbackOnFailure: true\ncreateNamespace: true\n",
                "createNamespace applies to install only, not to RUNNER_COMMAND=upgrade at line 2, \
                 column 1",
            ),
            (
                Uninstall,
                "createNamespace: true\n",
                "createNamespace applies to install only, not to RUNNER_COMMAND=uninstall",
            ),
            (
                Uninstall,
                "rollbackOnFailure: true\n",
                &format!("rollbackOnFailure {only}"),
            ),
            (Upgrade, "valuesFrom: [{kind: Secret, name: s}]\n", ""),
            (
                Rollback,
                "valuesFrom: [{kind: Secret, name: s}]\n",
                &format!("valuesFrom {only}"),
            ),
            (
                Uninstall,
                "valuesFromFile: [a.yaml]\n",
                &format!("valuesFromFile {only}"),
            ),
        ]);
    }

    /// Install and upgrade accept each other's fields; the words say which one uses a field.
    #[test]
    fn install_and_upgrade_share_their_fields() {
        use Command::{Install, Rollback, Uninstall, Upgrade};
        check(&[
            (Upgrade, "name: x\ngenerateName: true\nreplace: true\n", ""),
            (
                Install,
                "reuseValues: true\nresetValues: true\nmaxHistory: 3\n",
                "",
            ),
            (
                Rollback,
                "generateName: true\n",
                "generateName applies to install only, not to RUNNER_COMMAND=rollback",
            ),
            (
                Rollback,
                "reuseValues: true\n",
                "reuseValues applies to upgrade only",
            ),
            (
                Uninstall,
                "maxHistory: 3\n",
                "maxHistory applies to upgrade and rollback only, not to RUNNER_COMMAND=uninstall",
            ),
        ]);
    }

    /// `output` of a rollback holds `helmRelease` only; an uninstall has none.
    #[test]
    fn output_fields() {
        use Command::{Rollback, Uninstall};
        check(&[
            (
                Rollback,
                "output: {helmRelease: {useHelmReleaseStorage: true}}\n",
                "",
            ),
            (
                Uninstall,
                "output: {}\n",
                "output applies to install, upgrade and rollback only",
            ),
            (
                Rollback,
                "output:\n  helmRelease: {}\n  additional: {goTemplate: x}\n",
                "output.additional applies to install and upgrade only, not to \
                 RUNNER_COMMAND=rollback at line 3, column 3",
            ),
            (
                Rollback,
                "output: {goTemplate: x}\n",
                "output.goTemplate applies to install and upgrade only",
            ),
        ]);
    }

    /// Each command's defaults: `wait` true, `maxHistory` 10, nothing else set.
    #[test]
    fn defaults() {
        for command in Command::ALL {
            match parse(command, "{}\n").unwrap() {
                HelmInput::Install(i) | HelmInput::Upgrade(i) => {
                    assert!(i.wait && i.max_history == 10 && i.values.is_none());
                    assert!(i.output.go_template().is_none() && !i.create_namespace);
                }
                HelmInput::Uninstall(i) => {
                    assert!(i.wait && !i.keep_history && !i.no_hooks && i.name.is_empty());
                }
                HelmInput::Rollback(i) => {
                    assert!(i.wait && i.revision.is_none() && i.max_history == 10);
                    assert!(!i.output.helm_release.use_helm_release_storage);
                }
                HelmInput::Unchecked => unreachable!(),
            }
        }
    }

    /// A field of no command, or a malformed one, keeps serde's words and position.
    #[test]
    fn unknown_fields_keep_serdes_words() {
        let e = refusal(Command::Install, "name: a\nchart: {name: c}\nvaluez: {}\n").unwrap();
        assert!(
            e.contains("unknown field `valuez`, expected one of")
                && e.ends_with("at line 3, column 1"),
            "{e}"
        );
        let e = refusal(Command::Rollback, "output: {helmRelease: {x: 1}}\n").unwrap();
        assert!(
            e.contains("unknown field `x`, expected one of useHelmReleaseStorage"),
            "{e}"
        );
        let e = refusal(Command::Uninstall, "keepHistory: maybe\n").unwrap();
        assert!(e.ends_with("invalid boolean at line 1, column 14"), "{e}");
        let e = refusal(Command::Install, "[a, b]\n").unwrap();
        assert!(e.ends_with("at line 1, column 1"), "{e}");
    }

    /// A key a command takes, written as YAML allows (quoted, a merge), is that field.
    #[test]
    fn keys_as_yaml_writes_them() {
        let i = parse(Command::Uninstall, "\"keepHistory\": true\n").unwrap();
        assert!(matches!(i, HelmInput::Uninstall(u) if u.keep_history));
        let i = parse(Command::Rollback, "<<: {revision: 3}\nwait: false\n").unwrap();
        assert!(matches!(i, HelmInput::Rollback(r) if r.revision == Some(3) && !r.wait));
        let e = refusal(Command::Rollback, "<<: {keepHistory: true}\n").unwrap();
        assert!(e.contains("keepHistory applies to uninstall only"), "{e}");
    }

    /// The variables pick the command; when they are wrong, the manifest is checked only for
    /// what every command refuses, and `prepare` refuses the variables first.
    #[test]
    fn the_variables_pick_the_command() {
        let mut vars: Vec<(String, String)> = [
            ("RUNNER_COMMAND", "uninstall"),
            ("RUNNER_HELM_RELEASE_PATH", "/r.yaml"),
            ("RUNNER_HELM_BINARY_PATH", "/bin/sh"),
            ("RUNNER_OUTPUT_HELM_RELEASE_FILE_PATH", "/tmp/r.yaml"),
            ("RUNNER_OUTPUT_ADDITIONAL_FILE_PATH", "/tmp/a.yaml"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .to_vec();
        let parse = |vars: &[(String, String)], text: &str| {
            let own: HelmVars = action_runner::vars::read(vars).unwrap();
            let process = ProcessEnv::from_vars(vars);
            serde_saphyr::with_deserializer_from_str(text, |d| {
                HelmInput::for_vars(&own, &process, d)
            })
            .map(|i| i.command())
        };
        assert_eq!(
            parse(&vars, "keepHistory: true\n").unwrap(),
            Some(Command::Uninstall)
        );
        assert!(parse(&vars, "chart: {name: c}\n").is_err());
        vars[1].1.clear();
        assert_eq!(
            parse(&vars, "chart: {name: c}\nkeepHistory: true\n").unwrap(),
            None
        );
        assert!(parse(&vars, "valuez: 1\n").is_err());
        assert!(parse(&vars, "keepHistory: maybe\n").is_err());
        vars[0].1 = "delete".into();
        assert_eq!(parse(&vars, "values: {a: 1}\n").unwrap(), None);
        assert!(parse(&vars, "keepHistory: [1]\nvaluez: 1\n").is_err());
    }
}
