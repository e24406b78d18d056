//! What reading process trees from `/proc` costs (`src/host/`), in CPU time of this process.
//!
//! Spawns N programs (default 100), each `sh -c 'sleep 600 & sleep 600'` in its own process
//! group, then, best of R rounds (default 30):
//!
//! - `read_trees` over all N roots, in one call (what a poll of a 100-program target does),
//!   and over one root: each tree walked down through `/proc/PID/task/TID/children`;
//! - the same through the fallback for kernels without those files (`read_trees_by_scan`: one
//!   pass over every process in `/proc`, then the trees), and that pass alone (one absent
//!   root: the pass and no tree);
//! - for comparison, the same pass through the `procfs` crate's own I/O (`all_processes()`,
//!   then `Process::stat()`), and with a hand-written parse of the same bytes instead of
//!   `procfs`'s `Stat`.
//!
//! ```text
//! cargo run --release --example proc_cost -- [N] [ROUNDS]
//! ```
//!
//! Every spawned process group is killed on exit, a panic included.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use procfs::FromRead;
use supervisord_receiver::host::ProcReader;

/// The spawned programs; each process group is killed on drop.
struct Programs(Vec<Child>);

impl Drop for Programs {
    fn drop(&mut self) {
        for child in &mut self.0 {
            // SAFETY: signalling a process group this program made.
            unsafe {
                libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL);
            }
            let _ = child.wait();
        }
    }
}

/// This process's CPU time (user + system, all threads), seconds.
fn cpu_now() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

/// Best (least) CPU and wall time of `rounds` runs of `f`, in µs.
fn best(rounds: usize, mut f: impl FnMut()) -> (f64, f64) {
    f(); // warm: page cache of /proc dentries, allocations
    let mut cpu = f64::MAX;
    let mut wall = f64::MAX;
    for _ in 0..rounds {
        let (c0, w0) = (cpu_now(), Instant::now());
        f();
        cpu = cpu.min(cpu_now() - c0);
        wall = wall.min(w0.elapsed().as_secs_f64());
    }
    (cpu * 1e6, wall * 1e6)
}

/// Every process's parent, through procfs's own I/O (a `Process` per pid, then `stat()`).
fn scan_procfs() -> usize {
    let mut n = 0;
    for p in procfs::process::all_processes().unwrap().flatten() {
        if let Ok(stat) = p.stat() {
            n += usize::from(stat.ppid >= 0);
        }
    }
    n
}

/// Every process's stat read into one buffer, parsed by `parse`.
fn scan_with(buf: &mut Vec<u8>, parse: impl Fn(&[u8]) -> Option<(i64, u64)>) -> usize {
    let mut n = 0;
    let mut path = String::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        path.clear();
        use std::fmt::Write as _;
        let _ = write!(path, "/proc/{pid}/stat");
        buf.clear();
        if std::fs::File::open(&path)
            .and_then(|f| read_all(f, buf))
            .is_err()
        {
            continue;
        }
        n += usize::from(parse(buf).is_some());
    }
    n
}

/// As `src/host/`'s: plain `read`s, no size query.
fn read_all(mut file: std::fs::File, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    let mut len = buf.len();
    loop {
        if buf.capacity() - len < 512 {
            buf.reserve(1024);
        }
        buf.resize(buf.capacity(), 0);
        match file.read(&mut buf[len..]) {
            Ok(0) => {
                buf.truncate(len);
                return Ok(len);
            }
            Ok(n) => len += n,
            Err(e) => {
                buf.truncate(len);
                return Err(e);
            }
        }
    }
}

/// By hand, the nine fields `src/host/` keeps: the fields after the last ')'.
fn parse_by_hand(stat: &[u8]) -> Option<(i64, u64)> {
    let close = stat.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(stat.get(close + 2..)?).ok()?;
    // Fields 3.. of proc_pid_stat(5), numbered from 0 here.
    let mut f = [0i64; 22];
    for (i, field) in rest.split_ascii_whitespace().take(22).enumerate() {
        if i > 0 {
            f[i] = field.parse().ok()?;
        }
    }
    let [_, ppid, _, _, _, _, _, _, _, _, _, utime, stime, cutime, cstime, _, _, threads, _, start, vsize, rss] =
        f;
    let sum = utime + stime + cutime + cstime + threads + start + vsize + rss;
    Some((ppid, sum as u64))
}

fn parse_procfs(stat: &[u8]) -> Option<(i64, u64)> {
    let s = procfs::process::Stat::from_read(stat).ok()?;
    let sum = s.utime + s.stime + s.starttime + s.vsize + s.rss;
    let sum = sum as i64 + s.cutime + s.cstime + s.num_threads;
    Some((i64::from(s.ppid), sum as u64))
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().map_or(100, |a| a.parse().expect("N"));
    let rounds: usize = args.next().map_or(30, |a| a.parse().expect("ROUNDS"));

    let start = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let mut programs = Programs(Vec::new());
    for _ in 0..n {
        let child = Command::new("sh")
            .args(["-c", "sleep 600 & sleep 600"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("spawn sh");
        programs.0.push(child);
    }
    let roots: Vec<(u32, i64)> = programs.0.iter().map(|c| (c.id(), start)).collect();

    let mut reader = ProcReader::new().expect("ProcReader::new");
    // Wait until every tree has its children and the counts stand still.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = 0;
    let members = loop {
        let total: u64 = reader
            .read_trees(&roots)
            .iter()
            .map(|r| r.as_ref().expect("tree").processes)
            .sum();
        if total == last && total >= 2 * n as u64 {
            break total;
        }
        assert!(Instant::now() < deadline, "the trees never settled");
        last = total;
        std::thread::sleep(Duration::from_millis(200));
    };
    let host_processes = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|s| s.parse::<u32>().is_ok())
        })
        .count();

    println!(
        "{n} programs, {members} processes in their trees ({:.1} each), {host_processes} \
         processes on the host; best of {rounds} rounds, CPU time of this process",
        members as f64 / n as f64
    );
    let (cpu, wall) = best(rounds, || {
        let got = reader.read_trees(&roots);
        assert!(got.iter().all(Result::is_ok));
    });
    println!(
        "read_trees, {n} roots in one call: {cpu:8.0} µs CPU ({:.1} µs per program), {wall:8.0} µs wall",
        cpu / n as f64
    );
    let (one_cpu, one_wall) = best(rounds, || {
        let _ = reader.read_trees(&roots[..1]);
    });
    println!("read_trees, 1 root per call:       {one_cpu:8.0} µs CPU, {one_wall:8.0} µs wall");

    println!("the fallback without children files (read_trees_by_scan):");
    let (cpu, wall) = best(rounds, || {
        let got = reader.read_trees_by_scan(&roots);
        assert!(got.iter().all(Result::is_ok));
    });
    println!(
        "  {n} roots in one call:           {cpu:8.0} µs CPU ({:.1} µs per program), {wall:8.0} µs wall",
        cpu / n as f64
    );
    let (scan_cpu, scan_wall) = best(rounds, || {
        let _ = reader.read_trees_by_scan(&[(0, 0)]);
    });
    println!(
        "  of which the /proc pass:         {scan_cpu:8.0} µs CPU ({:.2} µs per host process), {scan_wall:8.0} µs wall",
        scan_cpu / host_processes as f64
    );
    println!(
        "  and the {n} trees (fd counts):     {:8.0} µs CPU ({:.1} µs per program)",
        cpu - scan_cpu,
        (cpu - scan_cpu) / n as f64
    );
    let (one_cpu, one_wall) = best(rounds, || {
        let _ = reader.read_trees_by_scan(&roots[..1]);
    });
    println!(
        "  1 root per call:                 {one_cpu:8.0} µs CPU, {one_wall:8.0} µs wall (a pass per call)"
    );

    println!("the /proc pass, other ways:");
    let (c, w) = best(rounds, || {
        scan_procfs();
    });
    println!("  procfs all_processes + stat():   {c:8.0} µs CPU, {w:8.0} µs wall");
    let mut buf = Vec::with_capacity(1024);
    let (c, w) = best(rounds, || {
        scan_with(&mut buf, parse_procfs);
    });
    println!("  one buffer, procfs Stat parse:   {c:8.0} µs CPU, {w:8.0} µs wall");
    let (c, w) = best(rounds, || {
        scan_with(&mut buf, parse_by_hand);
    });
    println!("  one buffer, parse by hand:       {c:8.0} µs CPU, {w:8.0} µs wall");
    drop(programs);
}
