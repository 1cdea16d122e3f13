/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Unit tests for the command-line parser (system/options.c). */
#include "qemu/osdep.h"
#include "sysemu/options.h"

static GodwitOptions *parse(GError **err, ...)
{
    va_list ap;
    GPtrArray *argv = g_ptr_array_new();
    const char *a;
    bool exit_now;

    g_ptr_array_add(argv, (char *)"godwit");
    va_start(ap, err);
    while ((a = va_arg(ap, const char *))) {
        g_ptr_array_add(argv, (char *)a);
    }
    va_end(ap);
    GodwitOptions *o = godwit_options_parse((int)argv->len, (char **)argv->pdata,
                                            &exit_now, err);
    g_ptr_array_free(argv, TRUE);
    return o;
}

static void expect_error(const char *substr, ...)
{
    /* Re-pack the varargs into a NULL-terminated list for parse(). */
    va_list ap;
    const char *args[16];
    int n = 0;
    GError *err = NULL;

    va_start(ap, substr);
    while ((args[n] = va_arg(ap, const char *)) && n < 15) {
        n++;
    }
    va_end(ap);
    args[n] = NULL;
    GodwitOptions *o = parse(&err, args[0], args[1], args[2], args[3], args[4],
                             args[5], args[6], args[7], NULL);
    g_assert_null(o);
    g_assert_nonnull(err);
    if (!strstr(err->message, substr)) {
        g_test_message("error was: %s", err->message);
    }
    g_assert_nonnull(strstr(err->message, substr));
    /* One sentence, one line. */
    g_assert_null(strchr(err->message, '\n'));
    g_error_free(err);
}

static void test_sizes(void)
{
    uint64_t v;
    GError *err = NULL;

    g_assert_true(parse_ram_size("512", &v, NULL));
    g_assert_cmpuint(v, ==, 512ULL << 20);
    g_assert_true(parse_ram_size("4G", &v, NULL));
    g_assert_cmpuint(v, ==, 4ULL << 30);
    g_assert_true(parse_ram_size("1.5G", &v, NULL));
    g_assert_cmpuint(v, ==, 3ULL << 29);
    g_assert_true(parse_size("4096", &v, NULL));
    g_assert_cmpuint(v, ==, 4096);
    g_assert_true(parse_size("2k", &v, NULL));
    g_assert_cmpuint(v, ==, 2048);
    g_assert_false(parse_size("12Q", &v, &err));
    g_clear_error(&err);
    g_assert_false(parse_size("-1", &v, &err));
    g_clear_error(&err);
    g_assert_false(parse_size("", &v, &err));
    g_clear_error(&err);
    g_assert_false(parse_ram_size("99999999999999999999T", &v, &err));
    g_clear_error(&err);
}

static void test_keyval(void)
{
    GError *err = NULL;
    GHashTable *kv = keyval_parse("socket,id=c0,path=/tmp/a,,b,server,nowait", "backend", &err);

    g_assert_nonnull(kv);
    g_assert_cmpstr(g_hash_table_lookup(kv, "backend"), ==, "socket");
    g_assert_cmpstr(g_hash_table_lookup(kv, "path"), ==, "/tmp/a,b");
    g_assert_cmpstr(g_hash_table_lookup(kv, "server"), ==, "on");
    g_assert_cmpstr(g_hash_table_lookup(kv, "nowait"), ==, "on");
    g_hash_table_unref(kv);
    kv = keyval_parse("=x", NULL, &err);
    g_assert_null(kv);
    g_clear_error(&err);
}

static void test_good_cmdline(void)
{
    GError *err = NULL;
    GodwitOptions *o = parse(&err, "-m", "size=1G", "-smp", "2", "-kernel", "k.elf",
                             "-append", "passes=3", "-machine", "q35,accel=kvm",
                             "-enable-kvm", "-nographic", "-S", "-name", "guest=vm1",
                             "-incoming", "defer", NULL);
    g_assert_no_error(err);
    g_assert_nonnull(o);
    g_assert_cmpuint(o->ram_size, ==, 1ULL << 30);
    g_assert_cmpint(o->smp_cpus, ==, 2);
    g_assert_cmpstr(o->kernel, ==, "k.elf");
    g_assert_cmpstr(o->append, ==, "passes=3");
    g_assert_true(o->nographic);
    g_assert_true(o->start_paused);
    g_assert_cmpstr(o->name, ==, "vm1");
    g_assert_cmpstr(o->incoming, ==, "defer");
    godwit_options_free(o);
}

static void test_memory_backends(void)
{
    GError *err = NULL;
    GodwitOptions *o = parse(&err, "-object", "memory-backend-memfd,id=mem,size=256M,share=on",
                             "-numa", "node,memdev=mem", "-m", "256M", NULL);
    g_assert_no_error(err);
    g_assert_cmpstr(o->memory_backend, ==, "mem");
    MemBackendOpts *m = g_ptr_array_index(o->objects, 0);
    g_assert_cmpint(m->type, ==, MEM_BACKEND_MEMFD);
    g_assert_true(m->share);
    g_assert_cmpuint(m->size, ==, 256ULL << 20);
    godwit_options_free(o);

    /* The size comes from the backend when -m is absent. */
    o = parse(&err, "-object", "memory-backend-file,id=m,size=64M,mem-path=/dev/shm",
              "-machine", "q35,memory-backend=m", NULL);
    g_assert_no_error(err);
    g_assert_cmpuint(o->ram_size, ==, 64ULL << 20);
    godwit_options_free(o);
}

static void test_bad_cmdlines(void)
{
    expect_error("invalid option '-bogus'", "-bogus", NULL);
    expect_error("requires an argument", "-m", NULL);
    expect_error("invalid size", "-m", "lots", NULL);
    expect_error("between 1 and 64", "-smp", "0", NULL);
    expect_error("invalid number of CPUs", "-smp", "two", NULL);
    expect_error("unsupported machine type 'isapc'", "-machine", "isapc", NULL);
    expect_error("only kvm", "-accel", "tcg", NULL);
    expect_error("unsupported object type", "-object", "iothread,id=x", NULL);
    expect_error("parameter 'size' is missing", "-object", "memory-backend-ram,id=x", NULL);
    expect_error("parameter 'mem-path' is missing", "-object",
                 "memory-backend-file,id=x,size=1M", NULL);
    expect_error("unknown parameter 'colour'", "-object",
                 "memory-backend-ram,id=x,size=1M,colour=red", NULL);
    expect_error("memory backend 'nope' not found", "-numa", "node,memdev=nope", NULL);
    expect_error("has size", "-m", "128M", "-object", "memory-backend-ram,id=x,size=1M",
                 "-numa", "node,memdev=x", NULL);
    expect_error("unexpected argument 'stray'", "stray", NULL);
    expect_error("only 'none'", "-display", "gtk", NULL);
    expect_error("locking guest memory", "-realtime", "mlock=on", NULL);
    expect_error("unsupported device", "-device", "e1000", NULL);
}

static void test_vhost_user_net(void)
{
    GError *err = NULL;
    GodwitOptions *o = parse(&err, "-chardev", "socket,id=c0,path=/tmp/v0.sock,server=on,wait=off",
                             "-chardev", "socket,id=mon,path=/tmp/m.sock,server=on,wait=off",
                             "-netdev", "vhost-user,id=n0,chardev=c0,queues=1",
                             "-device", "virtio-net-pci,netdev=n0,mac=52:54:00:AB:cd:01,addr=0x5",
                             "-chardev", "socket,id=c1,path=/tmp/v1.sock,reconnect=2",
                             "-netdev", "vhost-user,id=n1,chardev=c1",
                             "-device", "virtio-net-pci,netdev=n1,vectors=0,rx_queue_size=1024",
                             NULL);
    g_assert_no_error(err);
    /* The vhost-user sockets left the chardev list; the monitor's stayed. */
    g_assert_cmpuint(o->chardevs->len, ==, 1);
    g_assert_nonnull(strstr(g_ptr_array_index(o->chardevs, 0), "id=mon"));
    g_assert_cmpuint(o->netdevs->len, ==, 2);
    NetdevOpts *n0 = g_ptr_array_index(o->netdevs, 0), *n1 = g_ptr_array_index(o->netdevs, 1);
    g_assert_cmpstr(n0->path, ==, "/tmp/v0.sock");
    g_assert_true(n0->server);
    g_assert_cmpuint(n0->reconnect, ==, 0);
    g_assert_cmpstr(n1->path, ==, "/tmp/v1.sock");
    g_assert_false(n1->server);
    g_assert_cmpuint(n1->reconnect, ==, 2);
    g_assert_cmpuint(o->net_devices->len, ==, 2);
    NetDeviceOpts *d0 = g_ptr_array_index(o->net_devices, 0);
    NetDeviceOpts *d1 = g_ptr_array_index(o->net_devices, 1);
    static const uint8_t mac0[6] = { 0x52, 0x54, 0x00, 0xab, 0xcd, 0x01 };
    static const uint8_t mac1[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x57 };  /* QEMU's 2nd default */
    g_assert_cmpmem(d0->mac, 6, mac0, 6);
    g_assert_cmpmem(d1->mac, 6, mac1, 6);
    g_assert_cmpint(d0->slot, ==, 5);
    g_assert_cmpint(d1->slot, ==, -1);
    g_assert_cmpuint(d0->rx_queue_size, ==, 256);
    g_assert_cmpuint(d1->rx_queue_size, ==, 1024);
    g_assert_cmpstr(d0->netdev, ==, "n0");
    godwit_options_free(o);

    /* addr= is hex, with an optional function. */
    o = parse(&err, "-chardev", "socket,id=c,path=/p", "-netdev", "vhost-user,id=n,chardev=c",
              "-device", "virtio-net-pci,netdev=n,addr=1f.0", NULL);
    g_assert_no_error(err);
    g_assert_cmpint(((NetDeviceOpts *)g_ptr_array_index(o->net_devices, 0))->slot, ==, 0x1f);
    godwit_options_free(o);
}

static void test_vhost_user_net_bad(void)
{
    expect_error("only vhost-user", "-netdev", "user,id=n0", NULL);
    expect_error("Parameter 'id' is missing", "-netdev", "vhost-user,chardev=c", NULL);
    expect_error("Parameter 'chardev' is missing", "-netdev", "vhost-user,id=n", NULL);
    expect_error("chardev \"c\" not found", "-netdev", "vhost-user,id=n,chardev=c", NULL);
    expect_error("is not a unix socket", "-chardev", "file,id=c,path=/tmp/x",
                 "-netdev", "vhost-user,id=n,chardev=c", NULL);
    expect_error("only one queue pair", "-chardev", "socket,id=c,path=/p",
                 "-netdev", "vhost-user,id=n,chardev=c,queues=2", NULL);
    expect_error("incompatible with socket in server", "-chardev",
                 "socket,id=c,path=/p,server=on,reconnect=1",
                 "-netdev", "vhost-user,id=n,chardev=c", NULL);
    expect_error("can't find value 'nope'", "-device", "virtio-net-pci,netdev=nope", NULL);
    expect_error("parameter 'netdev' is missing", "-device", "virtio-net-pci", NULL);
    expect_error("'virtio-net-pci.mac' doesn't take value", "-chardev", "socket,id=c,path=/p",
                 "-netdev", "vhost-user,id=n,chardev=c",
                 "-device", "virtio-net-pci,netdev=n,mac=01:00:5e:00:00:01", NULL);
    expect_error("'virtio-net-pci.mac' doesn't take value", "-chardev", "socket,id=c,path=/p",
                 "-netdev", "vhost-user,id=n,chardev=c",
                 "-device", "virtio-net-pci,netdev=n,mac=52:54:00:12:34", NULL);
    expect_error("it's in use", "-chardev", "socket,id=c,path=/p",
                 "-netdev", "vhost-user,id=n,chardev=c",
                 "-device", "virtio-net-pci,netdev=n", "-device", "virtio-net-pci,netdev=n", NULL);
    expect_error("in use by the host bridge", "-chardev", "socket,id=c,path=/p",
                 "-netdev", "vhost-user,id=n,chardev=c",
                 "-device", "virtio-net-pci,netdev=n,addr=0", NULL);
    expect_error("only PCI function 0", "-chardev", "socket,id=c,path=/p",
                 "-netdev", "vhost-user,id=n,chardev=c",
                 "-device", "virtio-net-pci,netdev=n,addr=3.1", NULL);
    expect_error("legacy virtio is not supported", "-chardev", "socket,id=c,path=/p",
                 "-netdev", "vhost-user,id=n,chardev=c",
                 "-device", "virtio-net-pci,netdev=n,disable-legacy=off", NULL);
    expect_error("power of 2", "-chardev", "socket,id=c,path=/p",
                 "-netdev", "vhost-user,id=n,chardev=c",
                 "-device", "virtio-net-pci,netdev=n,tx_queue_size=300", NULL);
    expect_error("unknown parameter 'speed'", "-chardev", "socket,id=c,path=/p",
                 "-netdev", "vhost-user,id=n,chardev=c",
                 "-device", "virtio-net-pci,netdev=n,speed=10", NULL);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/options/vhost-user-net", test_vhost_user_net);
    g_test_add_func("/options/vhost-user-net-bad", test_vhost_user_net_bad);
    g_test_add_func("/options/sizes", test_sizes);
    g_test_add_func("/options/keyval", test_keyval);
    g_test_add_func("/options/good", test_good_cmdline);
    g_test_add_func("/options/memory-backends", test_memory_backends);
    g_test_add_func("/options/bad", test_bad_cmdlines);
    return g_test_run();
}
