/*
 * proxy/admin/symbolize.c: in-process symbolization: names the function that holds a code address
 * from the ELF symbol tables of the object that holds it (so static functions of the main
 * binary resolve too, and a binary stripped of debug information still names them), then
 * dladdr; and the heap profile's program counters with their names.
 *
 * No state between calls: each call maps its own scratch and the ELF images it reads, and
 * unmaps them before it returns. Thread: any.
 */
#include "mem/base.h"
#include "proxy/admin/symbolize.h"

#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* One ELF file mapped read-only, with its symbol tables located. */
typedef struct elf_s {
    const char *path; /* borrows: the dladdr name, or "/proc/self/exe" */
    const void *base; /* load address, dli_fbase */
    const uint8_t *img;
    size_t img_len;
    bool is_exec; /* ET_EXEC: symbol values are absolute */
    struct {
        const Elf64_Sym *syms;
        size_t cnt;
        const char *str;
        size_t str_len;
    } tab[2]; /* .symtab, .dynsym */
} elf_t;

#define ELF_CACHE_MAX 8

static void elf_close(elf_t *e)
{
    if (e->img)
        munmap((void *)e->img, e->img_len);
    memset(e, 0, sizeof(*e));
}

/* Maps `path` and finds its symbol tables. Every offset is bounds-checked: the file is ours,
 * but a truncated or replaced binary must not crash a dump. */
static int elf_open(elf_t *e, const char *path, const void *base)
{
    memset(e, 0, sizeof(*e));
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_size < (off_t)sizeof(Elf64_Ehdr)) {
        close(fd);
        return -EINVAL;
    }
    void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (m == MAP_FAILED)
        return -ENOMEM;
    e->img = m;
    e->img_len = (size_t)st.st_size;
    e->path = path;
    e->base = base;
    const Elf64_Ehdr *eh = m;
    if (memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 || eh->e_ident[EI_CLASS] != ELFCLASS64 ||
        eh->e_shentsize != sizeof(Elf64_Shdr))
        goto fail;
    e->is_exec = eh->e_type == ET_EXEC;
    if (eh->e_shoff == 0 || eh->e_shoff > e->img_len ||
        (size_t)eh->e_shnum * sizeof(Elf64_Shdr) > e->img_len - eh->e_shoff)
        goto fail;
    const Elf64_Shdr *sh = (const Elf64_Shdr *)(e->img + eh->e_shoff);
    for (unsigned i = 0; i < eh->e_shnum; i++) {
        int t = sh[i].sh_type == SHT_SYMTAB ? 0 : sh[i].sh_type == SHT_DYNSYM ? 1 : -1;
        if (t < 0 || sh[i].sh_link >= eh->e_shnum)
            continue;
        const Elf64_Shdr *strsh = &sh[sh[i].sh_link];
        if (sh[i].sh_offset > e->img_len || sh[i].sh_size > e->img_len - sh[i].sh_offset ||
            strsh->sh_offset > e->img_len || strsh->sh_size > e->img_len - strsh->sh_offset)
            continue;
        e->tab[t].syms = (const Elf64_Sym *)(e->img + sh[i].sh_offset);
        e->tab[t].cnt = sh[i].sh_size / sizeof(Elf64_Sym);
        e->tab[t].str = (const char *)(e->img + strsh->sh_offset);
        e->tab[t].str_len = strsh->sh_size;
    }
    return 0;
fail:
    elf_close(e);
    return -EINVAL;
}

/* Finds the function symbol that contains `pc`. Returns its name or NULL. A linear scan per
 * PC: dumps are rare and this needs no allocation for a sorted copy. A symbol whose
 * [value, value + size) holds the address wins; otherwise the nearest lower symbol of size 0
 * (hand-written assembly). */
static const char *elf_lookup(const elf_t *e, uintptr_t pc)
{
    uintptr_t addr = e->is_exec ? pc : pc - (uintptr_t)e->base;
    const char *near = NULL;
    uint64_t near_start = 0;
    for (int t = 0; t < 2; t++) {
        for (size_t i = 0; i < e->tab[t].cnt; i++) {
            const Elf64_Sym *s = &e->tab[t].syms[i];
            if (ELF64_ST_TYPE(s->st_info) != STT_FUNC || s->st_value == 0 ||
                s->st_name >= e->tab[t].str_len || s->st_value > addr)
                continue;
            const char *name = e->tab[t].str + s->st_name;
            /* The name must end inside its string table. */
            if (memchr(name, 0, e->tab[t].str_len - s->st_name) == NULL)
                continue;
            if (addr < s->st_value + s->st_size)
                return name;
            if (s->st_size == 0 && s->st_value >= near_start) {
                near = name;
                near_start = s->st_value;
            }
        }
    }
    return near;
}

typedef struct symctx_s {
    elf_t elf[ELF_CACHE_MAX];
    size_t elf_cnt;
    const void *self_base; /* where the main executable is loaded */
} symctx_t;

/* Resolves `pc` to a function name: the ELF tables of the object that holds it (so static
 * functions of the main binary resolve too), then dladdr's dynamic symbol. */
static const char *sym_resolve(symctx_t *c, uintptr_t pc)
{
    Dl_info di;
    memset(&di, 0, sizeof(di));
    /* Return addresses point after the call; look up the call instruction itself. */
    uintptr_t q = pc > 0 ? pc - 1 : pc;
    if (dladdr((void *)q, &di) == 0 || di.dli_fbase == NULL)
        return NULL;
    elf_t *e = NULL;
    for (size_t i = 0; i < c->elf_cnt; i++) {
        if (c->elf[i].base == di.dli_fbase) {
            e = &c->elf[i];
            break;
        }
    }
    if (e == NULL && c->elf_cnt < ELF_CACHE_MAX) {
        const char *path = di.dli_fbase == c->self_base ? "/proc/self/exe" : di.dli_fname;
        if (path && path[0] && elf_open(&c->elf[c->elf_cnt], path, di.dli_fbase) == 0)
            e = &c->elf[c->elf_cnt++];
    }
    const char *name = e ? elf_lookup(e, q) : NULL;
    return name ? name : di.dli_sname;
}

/* Resolves one address in-process (the tests; /heap_dump/symbols uses the dump). The
 * returned name lives in a mapping released by the next call; copy it. */
int px_symbolize_pc(const void *pc, char *out, size_t out_len)
{
    MEM_ASSERT(out != NULL);
    MEM_ASSERT(out_len > 0);
    symctx_t *c =
        mmap(NULL, sizeof(symctx_t), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (c == MAP_FAILED)
        return -ENOMEM;
    memset(c, 0, sizeof(*c));
    Dl_info self;
    if (dladdr((void *)px_symbolize_pc, &self) != 0)
        c->self_base = self.dli_fbase;
    const char *name = sym_resolve(c, (uintptr_t)pc + 1);
    int err = name ? 0 : -ENOENT;
    if (name)
        snprintf(out, out_len, "%s", name);
    for (size_t i = 0; i < c->elf_cnt; i++)
        elf_close(&c->elf[i]);
    munmap(c, sizeof(*c));
    return err;
}

typedef struct dump_ctx_s {
    symctx_t *sym;
    mem_write_fn write;
    void *ud;
} dump_ctx_t;

static int on_pc(void *ud, const void *pc)
{
    dump_ctx_t *d = ud;
    const char *name = sym_resolve(d->sym, (uintptr_t)pc);
    char line[600];
    int n =
        snprintf(line, sizeof(line), "0x%016" PRIxPTR " %s\n", (uintptr_t)pc, name ? name : "??");
    MEM_ASSERT(n > 0);
    return d->write(d->ud, line, MEM_MIN((size_t)n, sizeof(line) - 1));
}

struct px_symbolizer_s {
    symctx_t c;
};

px_symbolizer_t *px_symbolizer_new(void)
{
    px_symbolizer_t *sy = mmap(NULL, sizeof(px_symbolizer_t), PROT_READ | PROT_WRITE,
                               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (sy == MAP_FAILED)
        return NULL;
    memset(sy, 0, sizeof(*sy));
    Dl_info self;
    if (dladdr((void *)px_symbolizer_new, &self) != 0)
        sy->c.self_base = self.dli_fbase;
    return sy;
}

const char *px_symbolizer_name(px_symbolizer_t *sy, const void *pc)
{
    MEM_ASSERT(sy != NULL);
    return sym_resolve(&sy->c, (uintptr_t)pc);
}

void px_symbolizer_free(px_symbolizer_t *sy)
{
    if (sy == NULL)
        return;
    MEM_ASSERT(sy->c.elf_cnt <= ELF_CACHE_MAX);
    for (size_t i = 0; i < sy->c.elf_cnt; i++)
        elf_close(&sy->c.elf[i]);
    munmap(sy, sizeof(*sy));
}

int px_symbolize_dump(mem_write_fn write, void *ud)
{
    return px_symbolize_dump_at(0, write, ud);
}

int px_symbolize_dump_at(long which, mem_write_fn write, void *ud)
{
    MEM_ASSERT(write != NULL);
    px_symbolizer_t *sy = px_symbolizer_new();
    if (sy == NULL)
        return -ENOMEM;
    dump_ctx_t d = {.sym = &sy->c, .write = write, .ud = ud};
    int err = mem_heapprof_each_pc_at(which, on_pc, &d);
    px_symbolizer_free(sy);
    return err;
}
