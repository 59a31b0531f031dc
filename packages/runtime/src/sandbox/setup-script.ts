// The shell script that prepares a step's namespaces. util-linux `unshare` has just made new
// pid/mount/ipc/uts(/net) namespaces and forked it as pid 1; it runs the host's /bin/sh and host
// tools, mounts what the step needs onto the rootfs (paths already resolved inside the root by
// run.ts), then execs the final command, which chroots into the rootfs and switches user.
//
// It says "ok" on fd 3 right before the final exec, so a failed setup is told apart from a failed step.
// Arguments: a list of operations, `--`, the final command. Operations:
//   sysfs DST | rbind SRC DST | bind SRC DST ro|rw | tmpfs DST OPTIONS | secret FD DST UID GID
//   lo | hostname NAME
// /proc is mounted by unshare itself (--mount-proc), /dev is an rbind of devices.ts' template.
export const SETUP_SCRIPT = String.raw`set -e
while [ "$1" != -- ]; do
  op=$1; shift
  case $op in
  sysfs) mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$1"; shift ;;
  rbind) mount --rbind "$1" "$2"; shift 2 ;;
  bind)
    mount --bind "$1" "$2"
    if [ "$3" = ro ]; then mount -o remount,bind,ro "$2"; fi
    shift 3 ;;
  tmpfs) mount -t tmpfs -o "$2" tmpfs "$1"; shift 2 ;;
  secret) (umask 277; eval "cat <&$1" >"$2"); eval "exec $1<&-"; chown "$3:$4" "$2"; shift 4 ;;
  lo) ip link set lo up ;;
  hostname) hostname "$1"; shift ;;
  *) echo "mstage sandbox: unknown setup operation $op" >&2; exit 125 ;;
  esac
done
shift
printf ok >&3; exec 3>&-
exec "$@"
`;
