// One directory's listing in one call, for the walk of a large local() source
// (packages/core/src/local/walk-pool.ts): its names, sorted, and per name the lstat numbers the walk
// uses, exactly as listDirectory there gives them. Node 20's lstatSync builds a Stats object with
// four Date objects per call and takes an absolute path; here each entry is one fstatat() relative
// to the directory's descriptor and five doubles in an ArrayBuffer.
//
// Wherever Node could answer differently (a name that is not UTF-8, or whose UTF-16 order is not
// its byte order; an error other than "gone"), list() returns undefined and the caller lists the
// directory with listDirectory, which answers as Node does or throws Node's error.
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
// list() leaves to listDirectory.
static int readNames(DIR *dir, Names *out) {
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
    if (!utf8((const unsigned char *)name, n, 0)) {
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

// list(dir): { names: the sorted names joined by "\0", stats: Float64Array of NUMBERS per name,
// links: the targets of the symbolic links among them, in order }, or undefined.
static napi_value list(napi_env env, napi_callback_info info) {
  napi_value result = NULL, undefined;
  napi_get_undefined(env, &undefined);
  size_t argc = 1;
  napi_value arg;
  char path[PATH_MAX];
  size_t pathLength;
  if (napi_get_cb_info(env, info, &argc, &arg, NULL, NULL) != napi_ok || argc < 1) return undefined;
  if (napi_get_value_string_utf8(env, arg, path, sizeof path, &pathLength) != napi_ok || pathLength >= sizeof path - 1) return undefined;

  Names names = {0};
  DIR *dir = NULL;
  int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    // Removed while the walk ran: it was never there (as listDirectory).
    if (errno != ENOENT) return undefined;
  } else {
    dir = fdopendir(fd);
    if (dir == NULL) {
      close(fd);
      return undefined;
    }
    if (readNames(dir, &names) != 0) goto done;
  }

  napi_value stats, buffer, links, joined, object;
  double *numbers;
  if (napi_create_arraybuffer(env, names.count * NUMBERS * sizeof(double), (void **)&numbers, &buffer) != napi_ok) goto done;
  if (napi_create_typedarray(env, napi_float64_array, names.count * NUMBERS, buffer, 0, &stats) != napi_ok) goto done;
  if (napi_create_array(env, &links) != napi_ok) goto done;
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
  // The names joined by "\0", in sorted order: each name's NUL becomes the separator.
  char *text = NULL;
  size_t length = 0;
  if (names.count > 0) {
    text = malloc(names.used);
    if (text == NULL) goto done;
    for (size_t i = 0; i < names.count; i++) {
      size_t n = strlen(names.sorted[i]);
      memcpy(text + length, names.sorted[i], n);
      length += n;
      text[length++] = 0;
    }
    length--;
  }
  napi_status made = napi_create_string_utf8(env, text ? text : "", length, &joined);
  free(text);
  if (made != napi_ok || napi_create_object(env, &object) != napi_ok) goto done;
  if (napi_set_named_property(env, object, "names", joined) != napi_ok || napi_set_named_property(env, object, "stats", stats) != napi_ok ||
      napi_set_named_property(env, object, "links", links) != napi_ok)
    goto done;
  result = object;

done:
  if (dir != NULL) closedir(dir);
  free(names.sorted);
  free(names.names);
  return result ? result : undefined;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  if (napi_create_function(env, "list", NAPI_AUTO_LENGTH, list, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "list", fn) != napi_ok) return NULL;
  return exports;
}
