// The shell script that prepares a step's namespaces. util-linux `unshare` has just made new
// pid/mount/ipc/uts(/net) namespaces and forked it as pid 1; it runs the host's /bin/sh and host
// tools, mounts what the step needs onto the rootfs (paths already resolved inside the root by
// run.ts), then execs the final command, which chroots into the rootfs and switches user.
//
// It says "ok" on fd 3 right before the final exec, so a failed setup is told apart from a failed step.
// Arguments: a list of operations, `--`, the final command. Operations:
//   proc DST | sysfs DST | dev DST | bind SRC DST ro|rw | tmpfs DST OPTIONS
//   secret FD DST UID GID | lo | hostname NAME
export const SETUP_SCRIPT = String.raw`set -e
while [ "$1" != -- ]; do
  op=$1; shift
  case $op in
  proc) mount -t proc -o nosuid,nodev,noexec proc "$1"; shift ;;
  sysfs) mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$1"; shift ;;
  dev)
    d=$1; shift
    mount -t tmpfs -o nosuid,noexec,mode=755,size=65536k tmpfs "$d"
    for n in null zero full random urandom tty; do : >"$d/$n"; mount --bind "/dev/$n" "$d/$n"; done
    mkdir -m 755 "$d/pts"; mkdir -m 1777 "$d/shm"
    mount -t devpts -o newinstance,ptmxmode=0666,mode=620 devpts "$d/pts"
    mount -t tmpfs -o nosuid,nodev,noexec,mode=1777 shm "$d/shm"
    ln -s pts/ptmx "$d/ptmx"; ln -s /proc/self/fd "$d/fd"
    ln -s /proc/self/fd/0 "$d/stdin"; ln -s /proc/self/fd/1 "$d/stdout"; ln -s /proc/self/fd/2 "$d/stderr"
    ;;
  bind)
    mount --bind "$1" "$2"
    if [ "$3" = ro ]; then mount -o remount,bind,ro "$2"; fi
    shift 3 ;;
  tmpfs) mount -t tmpfs -o "$2" tmpfs "$1"; shift 2 ;;
  secret)
    (umask 077; eval "cat <&$1" >"$2")
    eval "exec $1<&-"
    chown "$3:$4" "$2"; chmod 0400 "$2"
    shift 4 ;;
  lo) ip link set lo up ;;
  hostname) hostname "$1" 2>/dev/null || true; shift ;;
  *) echo "mstage sandbox: unknown setup operation $op" >&2; exit 125 ;;
  esac
done
shift
printf ok >&3; exec 3>&-
exec "$@"
`;
