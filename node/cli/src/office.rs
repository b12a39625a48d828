//! The office's commands of online registration: `huijiao unit …` (accounts) and
//! `huijiao review …` (the queue, approve, return), through the daemon's admin socket
//! when it runs, else on the store directly (`huijiao::commands::registration`).

use clap::Subcommand;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum UnitCommand {
    /// Create a unit account; prints its one-time password (shown once).
    Add {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// The unit's 统一社会信用代码 (18 characters, checked).
        #[arg(long, value_name = "CODE")]
        uscc: String,
        /// The unit's name.
        #[arg(long, value_name = "NAME")]
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// List the unit accounts.
    List {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Give a unit a new one-time password (its sign-ins end).
    Reset {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        #[arg(long, value_name = "CODE")]
        uscc: String,
        #[arg(long)]
        json: bool,
    },
    /// Disable a unit account (it signs in to nothing; its records stay).
    Disable {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        #[arg(long, value_name = "CODE")]
        uscc: String,
    },
    /// Enable a disabled unit account again.
    Enable {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        #[arg(long, value_name = "CODE")]
        uscc: String,
    },
}

#[derive(Subcommand)]
pub enum ReviewerCommand {
    /// Create a named reviewer; prints its one-time password (shown once).
    Add {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// The reviewer's login (2 to 32 of a–z, 0–9, . _ -).
        #[arg(long, value_name = "LOGIN")]
        login: String,
        /// The reviewer's name, as decisions record it.
        #[arg(long, value_name = "NAME")]
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// List the reviewers.
    List {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Disable a reviewer (its sessions end).
    Disable {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        #[arg(long, value_name = "LOGIN")]
        login: String,
    },
    /// Enable a disabled reviewer again.
    Enable {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        #[arg(long, value_name = "LOGIN")]
        login: String,
    },
}

pub fn reviewers(r: ReviewerCommand) -> anyhow::Result<i32> {
    use huijiao::registration::Command as C;
    match r {
        ReviewerCommand::Add { config, login, name, json } => registration(&config, C::ReviewerAdd { login, name }, json),
        ReviewerCommand::List { config, json } => registration(&config, C::ReviewerList, json),
        ReviewerCommand::Disable { config, login } => registration(&config, C::ReviewerDisable { login, disabled: true }, false),
        ReviewerCommand::Enable { config, login } => registration(&config, C::ReviewerDisable { login, disabled: false }, false),
    }
}

#[derive(Subcommand)]
pub enum ReviewCommand {
    /// The submissions waiting for review (oldest first), or those in a state.
    List {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// draft, unit_review, submitted (default), registered, returned, withdrawn.
        #[arg(long, value_name = "STATE", default_value = "submitted")]
        state: String,
        #[arg(long)]
        json: bool,
    },
    /// One submission with its fields, evidence and decisions (JSON).
    Show {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        id: String,
    },
    /// Approve a submission: the node assigns its 登记号 and the record enters the store.
    Approve {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        id: String,
        /// Who decides (default: the login name).
        #[arg(long, value_name = "NAME")]
        reviewer: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Return a submission to its unit with the reason it must fix.
    Return {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        id: String,
        #[arg(long, value_name = "TEXT")]
        reason: String,
        #[arg(long, value_name = "NAME")]
        reviewer: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

/// Who decides, from the command line: `--reviewer`, else the login name.
fn reviewer(given: Option<String>) -> String {
    given.unwrap_or_else(|| {
        let user = std::env::var("SUDO_USER").or_else(|_| std::env::var("USER")).unwrap_or_else(|_| "operator".into());
        format!("{user} (command line)")
    })
}

/// Runs an office's registration command and prints its answer; exit 1 when refused.
fn registration(config: &std::path::Path, c: huijiao::registration::Command, json: bool) -> anyhow::Result<i32> {
    use huijiao::commands::registration as r;
    let cfg = huijiao::config::Config::load(config)?;
    let name = serde_json::to_value(&c)?.get("command").and_then(|v| v.as_str()).unwrap_or_default().to_string();
    let mut out = std::io::stdout().lock();
    match r::run(&cfg, c)? {
        Ok(v) if json => {
            println!("{v}");
            Ok(0)
        }
        Ok(v) => {
            r::print(&name, &v, &mut out)?;
            Ok(0)
        }
        Err(e) if json => {
            println!("{}", serde_json::json!({"error": e}));
            Ok(1)
        }
        Err(e) => {
            r::print_refusal(&e, &mut std::io::stderr().lock())?;
            Ok(1)
        }
    }
}

pub fn unit(u: UnitCommand) -> anyhow::Result<i32> {
    use huijiao::registration::Command as C;
    match u {
        UnitCommand::Add { config, uscc, name, json } => registration(&config, C::UnitAdd { uscc, name }, json),
        UnitCommand::List { config, json } => registration(&config, C::UnitList, json),
        UnitCommand::Reset { config, uscc, json } => registration(&config, C::UnitReset { uscc }, json),
        UnitCommand::Disable { config, uscc } => registration(&config, C::UnitDisable { uscc, disabled: true }, false),
        UnitCommand::Enable { config, uscc } => registration(&config, C::UnitDisable { uscc, disabled: false }, false),
    }
}

pub fn review(r: ReviewCommand) -> anyhow::Result<i32> {
    use huijiao::registration::Command as C;
    match r {
        ReviewCommand::List { config, state, json } => {
            let Some(state) = huijiao_protocol::registration::State::parse(&state) else {
                anyhow::bail!("--state: one of draft, unit_review, submitted, registered, returned, withdrawn");
            };
            registration(&config, C::ReviewList { state: Some(state) }, json)
        }
        ReviewCommand::Show { config, id } => registration(&config, C::ReviewShow { id }, true),
        ReviewCommand::Approve { config, id, reviewer: who, json } => {
            registration(&config, C::ReviewApprove { id, reviewer: reviewer(who) }, json)
        }
        ReviewCommand::Return { config, id, reason, reviewer: who, json } => {
            registration(&config, C::ReviewReturn { id, reviewer: reviewer(who), reason }, json)
        }
    }
}
