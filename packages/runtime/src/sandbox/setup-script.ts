// The shell script that prepares a step's namespaces. util-linux `unshare` has just made new
// pid/mount/ipc/uts(/net) namespaces and forked it as pid 1; it runs the host's /bin/sh and host
// tools, mounts what the step needs onto the rootfs (paths already resolved inside the root by
// run.ts), then makes the rootfs the namespace's root with pivot_root and detaches the host's.
// A chroot would not do: the step is root in its namespace, holds CAP_SYS_CHROOT and could climb out
// of a chroot into the host's filesystem (tested). With the old root detached there is nothing above.
// Past that point no host binary is reachable, so the step is started through the copy of setpriv
// (and its loader and libraries) that devices.ts keeps in /dev/.mstage: it drops the capabilities
// that containment.ts denies a step and switches to the step's user.
//
// It says "ok" on fd 3 right before the final exec, so a failed setup is told apart from a failed step.
// Arguments: FSTAB (every mount of the step, see fstab.ts; made with one `mount --all`), operations,
// `--`, ROOT WORKDIR, UMOUNT×4 (loader, --library-path, dirs, binary: the host's umount run through
// the old root), N ENV×N, then ARGV…: the helper's setpriv with the step's capability bounding set
// (and user), `--`, the step's command. Operations:
//   secret FD DST UID GID | lo | hostname NAME
// /proc is mounted by unshare itself (--mount-proc); its masks are in FSTAB.
export const SETUP_SCRIPT = String.raw`set -e
OLD_ROOT=/dev/.mstage/old
mount -n --all --fstab "$1"; shift
while [ "$1" != -- ]; do
  op=$1; shift
  case $op in
  secret) (umask 277; eval "cat <&$1" >"$2"); eval "exec $1<&-"; chown "$3:$4" "$2"; shift 4 ;;
  lo) ip link set lo up ;;
  hostname) hostname "$1"; shift ;;
  *) echo "mstage sandbox: unknown setup operation $op" >&2; exit 125 ;;
  esac
done
root=$2 wd=$3; shift 3
cd "$root"
pivot_root . "./$OLD_ROOT"
cd /
"$1" "$2" "$3" "$4" -n -l "$OLD_ROOT"
n=$5; shift 5
cd "$wd"
unset PATH PWD OLDPWD
while [ "$n" -gt 0 ]; do export "$1"; shift; n=$((n - 1)); done
unset n wd root op
printf ok >&3; exec 3>&-
exec "$@"
`;
