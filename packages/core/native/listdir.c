// One directory's listing in one call. Node 20's lstatSync builds a Stats object with four Date
// objects per call and takes an absolute path; here each entry is one fstatat() relative to the
// directory's descriptor and a few doubles in an ArrayBuffer.
// - list(dir): for the walk of a large local() source (packages/core/src/local/walk-pool.ts): the
//   names, sorted, and per name the lstat numbers the walk uses, exactly as listDirectory there.
// - scan(dir, self): for a layer commit (packages/runtime/src/layer/commit.ts scanTree): the names
//   in byte order, the numbers a tar header needs, and every entry's xattrs (getfattr's dump of
//   the tree, without running getfattr).
//
// Wherever Node could answer differently (a name that is not UTF-8, or for list() one whose UTF-16
// order is not its byte order; an error other than "gone"), they return undefined and the caller
// lists the directory in JavaScript, which answers as Node does or throws Node's error.
#define _GNU_SOURCE
#define NAPI_VERSION 8
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <node_api.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

// Numbers per name, as NUMBERS in walk-pool.ts: st_mode (-1: gone before its lstat), size,
// mtimeMs, ctimeMs, ino.
#define NUMBERS 5

// Whether s[0..n) is UTF-8 as a JavaScript string round-trips it: no overlong forms, no surrogates.
// Without four-byte sequences (`astral` 0), byte order is the order of JavaScript's sort (UTF-16
// code units), which it is not for characters beyond U+FFFF.
static int utf8(const unsigned char *s, size_t n, int astral) {
  for (size_t i = 0; i < n;) {
    unsigned c = s[i];
    size_t more;
    unsigned lo = 0x80, hi = 0xbf;
    if (c < 0x80) {
      i++;
      continue;
    } else if (c >= 0xc2 && c <= 0xdf) more = 1;
    else if (c >= 0xe0 && c <= 0xef) {
      more = 2;
      if (c == 0xe0) lo = 0xa0;
      if (c == 0xed) hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4 && astral) {
      more = 3;
      if (c == 0xf0) lo = 0x90;
      if (c == 0xf4) hi = 0x8f;
    } else return 0;
    if (n - i <= more) return 0;
    if (s[i + 1] < lo || s[i + 1] > hi) return 0;
    for (size_t k = 2; k <= more; k++)
      if (s[i + k] < 0x80 || s[i + k] > 0xbf) return 0;
    i += more + 1;
  }
  return 1;
}

static int byName(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

// Node's msFromTimeSpec: sec * 1e3 + nsec / 1e6, in doubles.
static double ms(struct timespec t) { return (double)t.tv_sec * 1000.0 + (double)t.tv_nsec / 1000000.0; }

typedef struct {
  char *names;  // each name and its NUL, in readdir's order
  size_t used, size;
  char **sorted;
  size_t count;
} Names;

// Reads the names of `dir` (not . and ..) into `out`. 0 on success; else errno, or -1 for a name
// left to JavaScript (`astral`: four-byte characters allowed, see utf8()).
static int readNames(DIR *dir, Names *out, int astral) {
  size_t offsetsSize = 0, *offsets = NULL;
  int status = 0;
  for (;;) {
    errno = 0;
    struct dirent *d = readdir(dir);
    if (d == NULL) {
      status = errno;
      break;
    }
    const char *name = d->d_name;
    if (name[0] == '.' && (name[1] == 0 || (name[1] == '.' && name[2] == 0))) continue;
    size_t n = strlen(name);
    if (!utf8((const unsigned char *)name, n, astral)) {
      status = -1;
      break;
    }
    if (out->used + n + 1 > out->size) {
      size_t size = out->size ? out->size * 2 : 4096;
      while (size < out->used + n + 1) size *= 2;
      char *grown = realloc(out->names, size);
      if (grown == NULL) {
        status = ENOMEM;
        break;
      }
      out->names = grown;
      out->size = size;
    }
    if (out->count == offsetsSize) {
      offsetsSize = offsetsSize ? offsetsSize * 2 : 64;
      size_t *grown = realloc(offsets, offsetsSize * sizeof *offsets);
      if (grown == NULL) {
        status = ENOMEM;
        break;
      }
      offsets = grown;
    }
    offsets[out->count++] = out->used;
    memcpy(out->names + out->used, name, n + 1);
    out->used += n + 1;
  }
  if (status == 0 && out->count > 0) {
    out->sorted = malloc(out->count * sizeof *out->sorted);
    if (out->sorted == NULL) status = ENOMEM;
    else {
      for (size_t i = 0; i < out->count; i++) out->sorted[i] = out->names + offsets[i];
      qsort(out->sorted, out->count, sizeof *out->sorted, byName);
    }
  }
  free(offsets);
  return status;
}

// Argument `v` as a path in `path` (PATH_MAX bytes, NUL-terminated): 0 where it is no string or too long.
static int pathArg(napi_env env, napi_value v, char path[PATH_MAX], size_t *length) {
  return napi_get_value_string_utf8(env, v, path, PATH_MAX, length) == napi_ok && *length < PATH_MAX - 1;
}

// `path` as a directory stream, its descriptor in *fd; NULL, with errno, where it cannot be one.
static DIR *openDir(const char *path, int *fd) {
  *fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (*fd < 0) return NULL;
  DIR *dir = fdopendir(*fd);
  if (dir == NULL) {
    int e = errno;
    close(*fd);
    errno = e;
  }
  return dir;
}

// A Float64Array of `count` doubles, written through `*numbers`: 0 where N-API failed.
static int numberArray(napi_env env, size_t count, double **numbers, napi_value *array) {
  napi_value buffer;
  return napi_create_arraybuffer(env, count * sizeof(double), (void **)numbers, &buffer) == napi_ok &&
         napi_create_typedarray(env, napi_float64_array, count, buffer, 0, array) == napi_ok;
}

// The result object: `names` (the sorted names joined by "\0"), `stats`, and `extra` as property
// `extraName`. NULL where N-API failed.
static napi_value answer(napi_env env, const Names *names, napi_value stats, const char *extraName, napi_value extra) {
  napi_value joined, object;
  char *text = NULL;
  size_t length = 0;
  if (names->count > 0) {
    text = malloc(names->used);
    if (text == NULL) return NULL;
    for (size_t i = 0; i < names->count; i++) {
      size_t n = strlen(names->sorted[i]);
      memcpy(text + length, names->sorted[i], n);
      length += n;
      text[length++] = 0;
    }
    // Each name's NUL is the separator before the next: the last one is not part of the text.
    length--;
  }
  napi_status made = napi_create_string_utf8(env, text ? text : "", length, &joined);
  free(text);
  if (made != napi_ok || napi_create_object(env, &object) != napi_ok) return NULL;
  if (napi_set_named_property(env, object, "names", joined) != napi_ok || napi_set_named_property(env, object, "stats", stats) != napi_ok ||
      napi_set_named_property(env, object, extraName, extra) != napi_ok)
    return NULL;
  return object;
}

// list(dir): { names: the sorted names joined by "\0", stats: Float64Array of NUMBERS per name,
// links: the targets of the symbolic links among them, in order }, or undefined.
static napi_value list(napi_env env, napi_callback_info info) {
  napi_value result = NULL, undefined;
  napi_get_undefined(env, &undefined);
  size_t argc = 1;
  napi_value arg;
  char path[PATH_MAX];
  size_t pathLength;
  if (napi_get_cb_info(env, info, &argc, &arg, NULL, NULL) != napi_ok || argc < 1 || !pathArg(env, arg, path, &pathLength)) return undefined;

  Names names = {0};
  int fd;
  DIR *dir = openDir(path, &fd);
  // Removed while the walk ran: it was never there (as listDirectory), and has no names.
  if (dir == NULL && errno != ENOENT) return undefined;
  if (dir != NULL && readNames(dir, &names, 0) != 0) goto done;

  napi_value stats, links;
  double *numbers;
  if (!numberArray(env, names.count * NUMBERS, &numbers, &stats) || napi_create_array(env, &links) != napi_ok) goto done;
  uint32_t linkCount = 0;
  char target[PATH_MAX + 1];
  for (size_t i = 0; i < names.count; i++) {
    double *k = numbers + i * NUMBERS;
    struct stat st;
    memset(k, 0, NUMBERS * sizeof *k);
    if (fstatat(fd, names.sorted[i], &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno != ENOENT) goto done;
      k[0] = -1;
      continue;
    }
    if (S_ISLNK(st.st_mode)) {
      ssize_t n = readlinkat(fd, names.sorted[i], target, sizeof target);
      if (n < 0) {
        if (errno != ENOENT) goto done;
        k[0] = -1;
        continue;
      }
      // Truncated (it grew since), or a target Node would decode differently.
      if ((size_t)n >= sizeof target || !utf8((unsigned char *)target, (size_t)n, 1)) goto done;
      napi_value s;
      if (napi_create_string_utf8(env, target, (size_t)n, &s) != napi_ok || napi_set_element(env, links, linkCount++, s) != napi_ok) goto done;
    }
    k[0] = (double)st.st_mode;
    k[1] = (double)st.st_size;
    k[2] = ms(st.st_mtim);
    k[3] = ms(st.st_ctim);
    k[4] = (double)st.st_ino;
  }
  result = answer(env, &names, stats, "links", links);

done:
  if (dir != NULL) closedir(dir);
  free(names.sorted);
  free(names.names);
  return result ? result : undefined;
}

// Numbers per name from scan(): st_mode, uid, gid, size, mtimeMs, nlink, dev, ino, rdev.
#define SCAN_NUMBERS 9

// Appends `path`'s xattrs to `attrs` as (index, name, value) triples, names in byte order as
// getfattr dumps them. 0, or -1 where JavaScript must read them (an error, a name not UTF-8).
static int xattrsOf(napi_env env, const char *path, double index, napi_value attrs, uint32_t *count) {
  ssize_t size = llistxattr(path, NULL, 0);
  if (size < 0) return -1;
  if (size == 0) return 0;
  char *list = malloc((size_t)size);
  char **sorted = NULL;
  char *value = NULL;
  int status = -1;
  if (list == NULL) goto done;
  ssize_t got = llistxattr(path, list, (size_t)size);
  // Grown since it was measured: left to JavaScript rather than read twice.
  if (got < 0 || got > size) goto done;
  size_t n = 0;
  for (ssize_t i = 0; i < got; i += (ssize_t)strlen(list + i) + 1) n++;
  sorted = malloc(n * sizeof *sorted);
  if (sorted == NULL) goto done;
  n = 0;
  for (ssize_t i = 0; i < got; i += (ssize_t)strlen(list + i) + 1) sorted[n++] = list + i;
  qsort(sorted, n, sizeof *sorted, byName);
  for (size_t i = 0; i < n; i++) {
    if (!utf8((const unsigned char *)sorted[i], strlen(sorted[i]), 1)) goto done;
    ssize_t length = lgetxattr(path, sorted[i], NULL, 0);
    if (length < 0) goto done;
    free(value);
    value = malloc(length ? (size_t)length : 1);
    if (value == NULL) goto done;
    ssize_t read = lgetxattr(path, sorted[i], value, (size_t)length);
    if (read < 0 || read > length) goto done;
    napi_value k, name, data;
    if (napi_create_double(env, index, &k) != napi_ok || napi_create_string_utf8(env, sorted[i], NAPI_AUTO_LENGTH, &name) != napi_ok ||
        napi_create_buffer_copy(env, (size_t)read, value, NULL, &data) != napi_ok)
      goto done;
    if (napi_set_element(env, attrs, (*count)++, k) != napi_ok || napi_set_element(env, attrs, (*count)++, name) != napi_ok ||
        napi_set_element(env, attrs, (*count)++, data) != napi_ok)
      goto done;
  }
  status = 0;
done:
  free(value);
  free(sorted);
  free(list);
  return status;
}

// scan(dir, self): { names: the names in byte order joined by "\0", stats: Float64Array of
// SCAN_NUMBERS per name, attrs: [index, name, value, …] for each xattr of each entry (index -1: dir
// itself, with `self`) }, or undefined. Nothing here is "gone": an entry removed meanwhile is
// JavaScript's to report.
static napi_value scan(napi_env env, napi_callback_info info) {
  napi_value result = NULL, undefined;
  napi_get_undefined(env, &undefined);
  size_t argc = 2;
  napi_value args[2];
  char path[PATH_MAX];
  size_t pathLength;
  bool self = false;
  if (napi_get_cb_info(env, info, &argc, args, NULL, NULL) != napi_ok || argc < 2 || !pathArg(env, args[0], path, &pathLength) ||
      napi_get_value_bool(env, args[1], &self) != napi_ok)
    return undefined;

  Names names = {0};
  int fd;
  DIR *dir = openDir(path, &fd);
  if (dir == NULL) return undefined;
  if (readNames(dir, &names, 1) != 0) goto done;

  napi_value stats, attrs;
  double *numbers;
  uint32_t attrCount = 0;
  if (!numberArray(env, names.count * SCAN_NUMBERS, &numbers, &stats) || napi_create_array(env, &attrs) != napi_ok) goto done;
  if (self && xattrsOf(env, path, -1, attrs, &attrCount) != 0) goto done;
  // dir + "/" + name, for the xattr calls (there is no llistxattrat before Linux 6.13).
  path[pathLength] = '/';
  for (size_t i = 0; i < names.count; i++) {
    double *k = numbers + i * SCAN_NUMBERS;
    struct stat st;
    if (fstatat(fd, names.sorted[i], &st, AT_SYMLINK_NOFOLLOW) != 0) goto done;
    k[0] = (double)st.st_mode;
    k[1] = (double)st.st_uid;
    k[2] = (double)st.st_gid;
    k[3] = (double)st.st_size;
    k[4] = ms(st.st_mtim);
    k[5] = (double)st.st_nlink;
    k[6] = (double)st.st_dev;
    k[7] = (double)st.st_ino;
    k[8] = (double)st.st_rdev;
    size_t n = strlen(names.sorted[i]);
    if (pathLength + 1 + n >= sizeof path) goto done;
    memcpy(path + pathLength + 1, names.sorted[i], n + 1);
    if (xattrsOf(env, path, (double)i, attrs, &attrCount) != 0) goto done;
  }
  result = answer(env, &names, stats, "attrs", attrs);

done:
  closedir(dir);
  free(names.sorted);
  free(names.names);
  return result ? result : undefined;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  if (napi_create_function(env, "list", NAPI_AUTO_LENGTH, list, NULL, &fn) != napi_ok || napi_set_named_property(env, exports, "list", fn) != napi_ok) return NULL;
  if (napi_create_function(env, "scan", NAPI_AUTO_LENGTH, scan, NULL, &fn) != napi_ok || napi_set_named_property(env, exports, "scan", fn) != napi_ok) return NULL;
  return exports;
}
