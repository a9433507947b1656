//! `quadmesh local-cluster`: a working cluster on this machine — a controlling instance
//! and copies, each a `quadmesh serve` process with its own data directory.

use anyhow::{bail, Context, Result};
use clap::Args;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Args, Debug)]
pub struct LocalClusterArgs {
    /// Where the instances keep their data (one directory each) and logs.
    #[arg(long, default_value = "./quadmesh-data")]
    pub data_dir: PathBuf,
    /// The replicated repository.
    #[arg(long, default_value = "demo")]
    pub repo: String,
    /// Port of the controlling instance; copies take the next ports.
    #[arg(long, default_value_t = 10035)]
    pub port: u16,
    /// Number of instances, the controlling one included.
    #[arg(long, default_value_t = 3)]
    pub instances: u16,
}

struct Instance {
    name: String,
    port: u16,
    child: Child,
}

/// The superuser password of the local cluster: made once, kept beside the data
/// (readable by the owner only).
fn password(data_dir: &Path) -> Result<String> {
    let path = data_dir.join("local-cluster-password");
    if let Ok(existing) = fs::read_to_string(&path) {
        return Ok(existing.trim().to_owned());
    }
    fs::create_dir_all(data_dir)?;
    let password: String = (0..12)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect();
    fs::write(&path, &password)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600))?;
    }
    Ok(password)
}

fn spawn(
    data_dir: &Path,
    name: &str,
    port: u16,
    role_args: &[String],
    password: &str,
) -> Result<Child> {
    let dir = data_dir.join(name);
    fs::create_dir_all(&dir)?;
    let log = fs::File::create(data_dir.join(format!("{name}.log")))?;
    Command::new(std::env::current_exe()?)
        .arg("serve")
        .arg("--data-dir")
        .arg(&dir)
        .args([
            "--bind",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--instance-name",
            name,
        ])
        .args(["--advertise", &format!("127.0.0.1:{port}")])
        .args(role_args)
        .env("QUADMESH_USER", "admin")
        .env("QUADMESH_PASSWORD", password)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .with_context(|| format!("cannot start {name}"))
}

async fn wait_ready(http: &reqwest::Client, instance: &mut Instance) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(status) = instance.child.try_wait()? {
            bail!("{} exited ({status}); see its log", instance.name);
        }
        let url = format!("http://127.0.0.1:{}/ready", instance.port);
        if let Ok(r) = http.get(&url).send().await {
            if r.status().is_success() {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            bail!("{} was not ready within 120 s; see its log", instance.name);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Stops instances with SIGTERM, all at once (each copy leaves the cluster on its own),
/// waiting up to 15 s before killing what still runs.
fn terminate(instances: &mut [Instance]) {
    for instance in instances.iter() {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(instance.child.id().to_string())
            .status();
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    for instance in instances.iter_mut() {
        while Instant::now() < deadline {
            if instance.child.try_wait().ok().flatten().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        if instance.child.try_wait().ok().flatten().is_none() {
            let _ = instance.child.kill();
            let _ = instance.child.wait();
        }
    }
}

/// Stops the copies first (they leave the cluster through the controlling instance),
/// then the controlling instance.
fn stop_all(instances: &mut [Instance]) {
    if let Some((controlling, copies)) = instances.split_first_mut() {
        terminate(copies);
        terminate(std::slice::from_mut(controlling));
    }
}

pub async fn run(args: LocalClusterArgs) -> Result<()> {
    if args.instances == 0 {
        bail!("--instances must be at least 1");
    }
    let password = password(&args.data_dir)?;
    let controlling_address = format!("127.0.0.1:{}", args.port);
    let mut instances = Vec::new();
    let controlling = spawn(
        &args.data_dir,
        "controlling",
        args.port,
        &[
            "--role".into(),
            "controlling".into(),
            "--repo".into(),
            args.repo.clone(),
        ],
        &password,
    )?;
    instances.push(Instance {
        name: "controlling".into(),
        port: args.port,
        child: controlling,
    });
    let http = reqwest::Client::new();
    let result = async {
        wait_ready(&http, &mut instances[0]).await?;
        for i in 1..args.instances {
            let name = format!("copy-{i}");
            let port = args.port + i;
            let role = [
                "--role".into(),
                "copy".into(),
                "--repo".into(),
                args.repo.clone(),
                "--controlling".into(),
                controlling_address.clone(),
            ];
            let child = spawn(&args.data_dir, &name, port, &role, &password)?;
            instances.push(Instance { name, port, child });
            let last = instances.len() - 1;
            wait_ready(&http, &mut instances[last]).await?;
        }
        anyhow::Ok(())
    }
    .await;
    if let Err(e) = result {
        stop_all(&mut instances);
        return Err(e);
    }

    println!(
        "quadmesh local cluster of repository '{}' is ready:",
        args.repo
    );
    for instance in &instances {
        println!(
            "  {:<12} http://127.0.0.1:{}/repositories/{}",
            instance.name, instance.port, args.repo
        );
    }
    println!(
        "user: admin  password: {password}  (kept in {})",
        args.data_dir.join("local-cluster-password").display()
    );
    println!("logs: {}/<instance>.log", args.data_dir.display());
    println!(
        "try:  quadmesh repl status admin:{password}@127.0.0.1:{}/{}",
        args.port, args.repo
    );
    println!("Ctrl-C stops the cluster (copies leave it first).");

    // SIGTERM (a service manager, a container runtime) stops it like Ctrl-C: the
    // instances must not outlive it.
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot listen for SIGTERM")?;
    let stopped_by = loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break None,
            _ = sigterm.recv() => break None,
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
        if let Some(i) = instances
            .iter_mut()
            .position(|i| i.child.try_wait().ok().flatten().is_some())
        {
            break Some(instances[i].name.clone());
        }
    };
    println!("stopping...");
    stop_all(&mut instances);
    match stopped_by {
        None => {
            println!("stopped");
            Ok(())
        }
        Some(name) => bail!(
            "{name} exited on its own; see its log in {}",
            args.data_dir.display()
        ),
    }
}
