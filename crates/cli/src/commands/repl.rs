use crate::client::Api;
use crate::spec::Spec;
use anyhow::Result;
use clap::Subcommand;
use quadmesh_repl::wire::{ClusterStatus, Promoted};
use reqwest::Method;

#[derive(Subcommand, Debug)]
pub enum ReplCommand {
    /// Make REPO the first (controlling) instance of a new cluster, creating it if missing.
    #[command(name = "create-cluster")]
    CreateCluster {
        /// USER:PASSWORD@HOST:PORT/REPO; HOST:PORT is also how the others will reach it.
        spec: String,
        instance_name: String,
    },
    /// Copy the cluster's repository to the server of NEW-SPEC and join it there, as the
    /// repository NEW-SPEC names (any name: several instances may share a server).
    #[command(name = "grow-cluster")]
    GrowCluster {
        controlling_spec: String,
        new_spec: String,
        instance_name: String,
    },
    /// Move the controlling role to another member (at the controlling instance).
    #[command(name = "set-controlling")]
    SetControlling {
        controlling_spec: String,
        instance_name: String,
    },
    /// Promote the member at SPEC to controlling instance when the controlling instance
    /// is gone for good: takes effect only if a strict majority of the members grant it
    /// (the old controlling instance, if it answers, counts like any other).
    Promote {
        /// USER:PASSWORD@HOST:PORT/REPO of the member to promote (the credentials must be
        /// valid on every member).
        spec: String,
    },
    /// Move the controlling role (agtool's spelling of set-controlling). With --force at
    /// another member, naming that member itself: it takes the role by a promotion.
    #[command(name = "controlling-instance")]
    ControllingInstance {
        spec: String,
        instance_name: String,
        #[arg(long)]
        force: bool,
    },
    /// Stop replication to and from an instance (at the controlling instance): it stays
    /// a member and catches up when started again.
    Stop {
        controlling_spec: String,
        instance_name: String,
        /// Seconds the instance is given to hear of it (else the stop is undone).
        #[arg(long, default_value_t = 180.0)]
        timeout: f64,
        /// Keep it stopped even if it cannot be told now (it stops once it hears of it).
        #[arg(long)]
        force: bool,
    },
    /// Start replication to and from a stopped instance again.
    Start {
        controlling_spec: String,
        instance_name: String,
    },
    /// Set the cluster's defaults for commits that send no x-repl-settings.
    Settings {
        controlling_spec: String,
        /// min, quorum, max or a number of instances.
        #[arg(long)]
        durability: Option<String>,
        /// Seconds a commit waits for its durability.
        #[arg(long)]
        distributed_transaction_timeout: Option<f64>,
        /// Commits that may wait for durability at once.
        #[arg(long)]
        transaction_latency_count: Option<u64>,
        /// Seconds a commit waits for a place among them.
        #[arg(long)]
        transaction_latency_timeout: Option<f64>,
    },
    /// Remove an instance from the cluster. Refused while the instance may hold writes
    /// the others lack (it holds some, or it cannot be reached to tell), unless --force.
    Remove {
        controlling_spec: String,
        instance_name: String,
        /// Remove it even if that discards writes only it holds.
        #[arg(long)]
        force: bool,
        /// Seconds the removed instance is given to hear of it.
        #[arg(long)]
        timeout: Option<f64>,
        /// The removed instance keeps its data as an ordinary repository.
        #[arg(long)]
        undo_repl: bool,
    },
    /// Show the instances of the cluster, their state and lag.
    Status {
        spec: String,
        /// Print the JSON the server answers instead of a table.
        #[arg(long)]
        json: bool,
    },
}

fn repl_url(spec: &Spec, action: &str) -> Result<String> {
    Ok(format!("{}/repl/{action}", spec.repository_url()?))
}

pub async fn run(command: ReplCommand) -> Result<()> {
    match command {
        ReplCommand::CreateCluster {
            spec,
            instance_name,
        } => {
            let api = Api::new(Spec::parse(&spec)?)?;
            let port = api.spec.port.to_string();
            let request = api
                .request(Method::PUT, &repl_url(&api.spec, "createCluster")?)
                .query(&[
                    ("host", api.spec.host.as_str()),
                    ("port", port.as_str()),
                    ("instanceName", instance_name.as_str()),
                ]);
            api.send(request).await?;
            println!(
                "created cluster of {} with instance {instance_name}",
                api.spec.repository()?
            );
        }
        ReplCommand::GrowCluster {
            controlling_spec,
            new_spec,
            instance_name,
        } => {
            let api = Api::new(Spec::parse(&controlling_spec)?)?;
            let new = Spec::parse(&new_spec)?;
            let port = new.port.to_string();
            let request = api
                .request(Method::PUT, &repl_url(&api.spec, "growCluster")?)
                .query(&[
                    ("host", new.host.as_str()),
                    ("port", port.as_str()),
                    ("name", new.repository()?),
                    ("user", new.user.as_str()),
                    ("password", new.password.as_str()),
                    ("instanceName", instance_name.as_str()),
                ]);
            api.send(request).await?;
            println!(
                "grew the cluster: {instance_name} at {}:{} as repository {}",
                new.host,
                new.port,
                new.repository()?
            );
        }
        ReplCommand::SetControlling {
            controlling_spec,
            instance_name,
        } => {
            let api = Api::new(Spec::parse(&controlling_spec)?)?;
            let request = api
                .request(Method::PUT, &repl_url(&api.spec, "setControlling")?)
                .query(&[("instanceName", instance_name.as_str())]);
            api.send(request).await?;
            println!("{instance_name} is now the controlling instance");
        }
        ReplCommand::Promote { spec } => {
            let api = Api::new(Spec::parse(&spec)?)?;
            let answer: Promoted = api
                .send(api.request(Method::PUT, &repl_url(&api.spec, "promote")?))
                .await?
                .json()
                .await?;
            println!(
                "{} is now the controlling instance (epoch {}, configuration version {})",
                answer.controlling.as_deref().unwrap_or("?"),
                answer.epoch,
                answer.config_version
            );
        }
        ReplCommand::Remove {
            controlling_spec,
            instance_name,
            force,
            timeout,
            undo_repl,
        } => {
            let api = Api::new(Spec::parse(&controlling_spec)?)?;
            let mut query = vec![
                ("instanceName", instance_name.clone()),
                ("force", force.to_string()),
                ("undo-repl", undo_repl.to_string()),
            ];
            if let Some(timeout) = timeout {
                query.push(("timeout", timeout.to_string()));
            }
            let request = api
                .request(Method::PUT, &repl_url(&api.spec, "remove")?)
                .query(&query);
            api.send(request).await?;
            println!("removed {instance_name} from the cluster");
        }
        ReplCommand::ControllingInstance {
            spec,
            instance_name,
            force,
        } => {
            let api = Api::new(Spec::parse(&spec)?)?;
            let request = api
                .request(Method::PUT, &repl_url(&api.spec, "controllingInstance")?)
                .query(&[
                    ("instanceName", instance_name.clone()),
                    ("force", force.to_string()),
                ]);
            api.send(request).await?;
            println!("{instance_name} is now the controlling instance");
        }
        ReplCommand::Stop {
            controlling_spec,
            instance_name,
            timeout,
            force,
        } => {
            let api = Api::new(Spec::parse(&controlling_spec)?)?;
            let request = api
                .request(Method::PUT, &repl_url(&api.spec, "stop")?)
                .query(&[
                    ("instanceName", instance_name.clone()),
                    ("timeout", timeout.to_string()),
                    ("force", force.to_string()),
                ]);
            api.send(request).await?;
            println!("stopped replication to and from {instance_name}");
        }
        ReplCommand::Start {
            controlling_spec,
            instance_name,
        } => {
            let api = Api::new(Spec::parse(&controlling_spec)?)?;
            let request = api
                .request(Method::PUT, &repl_url(&api.spec, "start")?)
                .query(&[("instanceName", instance_name.as_str())]);
            api.send(request).await?;
            println!("started replication to and from {instance_name}");
        }
        ReplCommand::Settings {
            controlling_spec,
            durability,
            distributed_transaction_timeout,
            transaction_latency_count,
            transaction_latency_timeout,
        } => {
            let api = Api::new(Spec::parse(&controlling_spec)?)?;
            let mut query = Vec::new();
            if let Some(v) = durability {
                query.push(("durability", v));
            }
            if let Some(v) = distributed_transaction_timeout {
                query.push(("distributedTransactionTimeout", v.to_string()));
            }
            if let Some(v) = transaction_latency_count {
                query.push(("transactionLatencyCount", v.to_string()));
            }
            if let Some(v) = transaction_latency_timeout {
                query.push(("transactionLatencyTimeout", v.to_string()));
            }
            anyhow::ensure!(
                !query.is_empty(),
                "name at least one setting: --durability, --distributed-transaction-timeout, --transaction-latency-count, --transaction-latency-timeout"
            );
            let request = api
                .request(Method::POST, &repl_url(&api.spec, "settings")?)
                .query(&query);
            api.send(request).await?;
            println!("the cluster's commit settings are changed");
        }
        ReplCommand::Status { spec, json } => {
            let api = Api::new(Spec::parse(&spec)?)?;
            let status: serde_json::Value = api
                .send(api.request(Method::GET, &repl_url(&api.spec, "status")?))
                .await?
                .json()
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                let status: ClusterStatus = serde_json::from_value(status).map_err(|e| {
                    anyhow::anyhow!("the server's repl/status is not one this CLI reads: {e}")
                })?;
                print!("{}", status_table(&status));
            }
        }
    }
    Ok(())
}

/// The status as people read it: one row per instance.
fn status_table(status: &ClusterStatus) -> String {
    let header: Vec<String> = [
        "instance",
        "repository",
        "address",
        "role",
        "state",
        "transactions",
        "lag (tx)",
        "lag (ms)",
        "last contact",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let rows: Vec<Vec<String>> = status
        .instances
        .iter()
        .map(|i| {
            let total: u64 = i.version_vector.values().sum();
            vec![
                i.name.clone(),
                i.repository.clone(),
                i.address.clone(),
                i.role.to_string(),
                i.state.to_string(),
                total.to_string(),
                i.lag_transactions.to_string(),
                i.lag_ms.to_string(),
                match i.last_contact_ms_ago {
                    Some(ms) => format!("{:.1} s ago", ms as f64 / 1000.0),
                    None => "never".to_owned(),
                },
            ]
        })
        .collect();
    let mut refused = status
        .writes_refused
        .as_ref()
        .map_or(String::new(), |reason| {
            format!("this instance takes no writes: {reason}\n")
        });
    if status.stopped {
        refused.push_str(
            "this instance is stopped: nothing replicates to or from it until it is started\n",
        );
    }
    if let Some(settings) = &status.settings {
        refused.push_str(&format!(
            "commit defaults: durability={} distributedTransactionTimeout={} transactionLatencyCount={} transactionLatencyTimeout={}\n",
            settings.durability,
            settings.distributed_transaction_timeout,
            settings
                .transaction_latency_count
                .map_or("none".to_owned(), |c| c.to_string()),
            settings.transaction_latency_timeout,
        ));
    }
    if let Some(healing) = &status.log_healing {
        refused.push_str(&format!(
            "the replication log is healing: {}\n",
            healing.description
        ));
    }
    format!(
        "cluster {} of repository {} (configuration {}, epoch {}), seen from {}\n{refused}{}",
        status.cluster,
        status.repository,
        status.config_version,
        status.config_epoch,
        status.instance,
        quadmesh_server::render_table(&header, &rows)
    )
}
