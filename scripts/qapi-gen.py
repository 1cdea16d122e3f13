#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""QMP schema compiler for godwit.

Reads a schema written in QEMU's QAPI syntax (a sequence of Python-dict-like
expressions with single-quoted strings and '#' comments), checks it, and
writes C for the QMP runtime: enum types with string tables, handler
prototypes plus the type tables the dispatcher checks arguments against,
typed event emitters, and a Markdown command reference built from the '##'
doc comments.  Python 3 standard library only.

Usage: qapi-gen.py [-o OUTDIR] [-p PREFIX] [--doc NAME] SCHEMA.json
Outputs (PREFIX defaults to 'qapi'): PREFIX-types.{h,c}, PREFIX-commands.{h,c},
PREFIX-events.{h,c} and the reference (default PREFIX-reference.md).
"""

import argparse
import os
import re
import sys


class SchemaError(Exception):
    def __init__(self, info, msg):
        super().__init__(msg)
        self.info = info
        self.msg = msg

    def __str__(self):
        if self.info is None:
            return self.msg
        return '%s:%d: %s' % (self.info[0], self.info[1], self.msg)


# ---------------------------------------------------------------------------
# Reading: text -> list of (expr, info, doc)

class Reader:
    """Tokenizer plus recursive-descent reader for one schema file."""

    def __init__(self, path, text):
        self.path = path
        self.text = text
        self.pos = 0
        self.line = 1
        self.pending_doc = None
        self.tok = None
        self.val = None
        self.tok_line = 1

    def info(self, line=None):
        return (self.path, line if line is not None else self.tok_line)

    def error(self, msg):
        raise SchemaError(self.info(), msg)

    def _read_doc_block(self):
        # We are at the start of a line that is exactly '##'.  Collect the
        # comment lines up to the closing '##'.
        lines = []
        start = self.line
        self._skip_line()
        while True:
            if self.pos >= len(self.text):
                raise SchemaError((self.path, start), "doc comment is not closed with '##'")
            end = self.text.find('\n', self.pos)
            if end < 0:
                end = len(self.text)
            raw = self.text[self.pos:end].strip()
            if raw == '##':
                self._skip_line()
                break
            if not raw.startswith('#'):
                raise SchemaError((self.path, self.line),
                                  "doc comment lines must start with '#'")
            body = raw[1:]
            if body.startswith(' '):
                body = body[1:]
            lines.append(body)
            self._skip_line()
        return lines

    def _skip_line(self):
        end = self.text.find('\n', self.pos)
        if end < 0:
            self.pos = len(self.text)
        else:
            self.pos = end + 1
            self.line += 1

    def next(self):
        while True:
            if self.pos >= len(self.text):
                self.tok = None
                self.tok_line = self.line
                return
            ch = self.text[self.pos]
            if ch == '#':
                line_start = self.text.rfind('\n', 0, self.pos) + 1
                end = self.text.find('\n', self.pos)
                if end < 0:
                    end = len(self.text)
                at_bol = self.text[line_start:self.pos].strip() == ''
                if at_bol and self.text[self.pos:end].strip() == '##':
                    self.pending_doc = (self.line, self._read_doc_block())
                    continue
                self._skip_line()
                continue
            if ch == '\n':
                self.line += 1
                self.pos += 1
                continue
            if ch in ' \t\r':
                self.pos += 1
                continue
            self.tok_line = self.line
            if ch in '{}[]:,':
                self.tok = ch
                self.pos += 1
                return
            if ch == "'":
                self.pos += 1
                out = []
                while True:
                    if self.pos >= len(self.text) or self.text[self.pos] == '\n':
                        self.error('missing terminating quote')
                    c = self.text[self.pos]
                    self.pos += 1
                    if c == "'":
                        break
                    if c == '\\':
                        if self.pos >= len(self.text):
                            self.error('missing terminating quote')
                        c = self.text[self.pos]
                        self.pos += 1
                        if c not in "\\'":
                            self.error("unknown escape \\%s in string" % c)
                    out.append(c)
                self.tok = "'"
                self.val = ''.join(out)
                return
            m = re.compile(r'[A-Za-z_]+').match(self.text, self.pos)
            if m and m.group(0) in ('true', 'false'):
                self.tok = 'bool'
                self.val = m.group(0) == 'true'
                self.pos = m.end()
                return
            if ch == '"':
                self.error('strings must use single quotes')
            self.error("stray '%s'" % (m.group(0) if m else ch))

    def expect(self, tok, what):
        if self.tok != tok:
            self.error('expected %s' % what)
        self.next()

    def value(self):
        if self.tok == '{':
            return self.obj()
        if self.tok == '[':
            return self.array()
        if self.tok in ("'", 'bool'):
            v = self.val
            self.next()
            return v
        self.error('expected a value')

    def obj(self):
        result = {}
        self.expect('{', "'{'")
        if self.tok == '}':
            self.next()
            return result
        while True:
            if self.tok != "'":
                self.error('expected a string key')
            key = self.val
            if key in result:
                self.error("duplicate key '%s'" % key)
            self.next()
            self.expect(':', "':'")
            result[key] = self.value()
            if self.tok == '}':
                self.next()
                return result
            self.expect(',', "',' or '}'")

    def array(self):
        result = []
        self.expect('[', "'['")
        if self.tok == ']':
            self.next()
            return result
        while True:
            result.append(self.value())
            if self.tok == ']':
                self.next()
                return result
            self.expect(',', "',' or ']'")

    def exprs(self):
        out = []
        self.next()
        while self.tok is not None:
            if self.tok != '{':
                self.error('expected a top-level expression')
            doc = None
            if self.pending_doc is not None:
                doc = self.pending_doc[1]
                self.pending_doc = None
            line = self.tok_line
            expr = self.obj()
            out.append((expr, (self.path, line), doc))
        return out


def read_schema(path, seen=None):
    if seen is None:
        seen = set()
    path = os.path.normpath(path)
    if path in seen:
        return []
    seen.add(path)
    try:
        with open(path, encoding='utf-8') as f:
            text = f.read()
    except OSError as e:
        raise SchemaError(None, "can't read schema file '%s': %s" % (path, e.strerror))
    result = []
    for expr, info, doc in Reader(path, text).exprs():
        if 'include' in expr:
            if set(expr) != {'include'} or not isinstance(expr['include'], str):
                raise SchemaError(info, "'include' must be the only key and name a file")
            sub = os.path.join(os.path.dirname(path), expr['include'])
            if not os.path.exists(sub):
                raise SchemaError(info, "included file '%s' does not exist" % expr['include'])
            result.extend(read_schema(sub, seen))
            continue
        result.append((expr, info, doc))
    return result


# ---------------------------------------------------------------------------
# Checking: build the entity model

BUILTINS = {
    'str': 'STR', 'int': 'INT', 'int8': 'INT8', 'int16': 'INT16', 'int32': 'INT32',
    'int64': 'INT64', 'uint8': 'UINT8', 'uint16': 'UINT16', 'uint32': 'UINT32',
    'uint64': 'UINT64', 'size': 'SIZE', 'number': 'NUMBER', 'bool': 'BOOL',
    'any': 'ANY', 'null': 'NULL',
}

# JSON types each kind of value may arrive as (for alternates).
JSON_CLASS = {
    'STR': 'string', 'NUMBER': 'number', 'BOOL': 'boolean', 'ANY': 'any',
    'NULL': 'null', 'ENUM': 'string', 'STRUCT': 'object', 'LIST': 'array',
}
for _k in ('INT', 'INT8', 'INT16', 'INT32', 'INT64', 'UINT8', 'UINT16', 'UINT32',
           'UINT64', 'SIZE'):
    JSON_CLASS[_k] = 'number'

META_KEYS = {
    'enum': {'enum', 'data', 'prefix'},
    'struct': {'struct', 'data', 'base'},
    'alternate': {'alternate', 'data'},
    'command': {'command', 'data', 'returns', 'boxed', 'allow-oob', 'allow-preconfig'},
    'event': {'event', 'data', 'boxed'},
    'pragma': {'pragma'},
}

NAME_RE = re.compile(r'^[A-Za-z][A-Za-z0-9_.-]*$')


class Member:
    def __init__(self, name, typ, optional):
        self.name = name
        self.type = typ        # type reference: str name or [name]
        self.optional = optional


class Entity:
    def __init__(self, meta, name, info, doc, expr):
        self.meta = meta
        self.name = name
        self.info = info
        self.doc = doc
        self.expr = expr


def c_name(name):
    return re.sub(r'[^A-Za-z0-9_]', '_', name)


def camel_to_upper(name):
    """RunState -> RUN_STATE, QMPCapability -> QMP_CAPABILITY."""
    out = ''
    for i, ch in enumerate(name):
        if ch.isupper() and i > 0:
            prev = name[i - 1]
            nxt = name[i + 1] if i + 1 < len(name) else ''
            if prev.islower() or prev.isdigit() or (prev.isupper() and nxt.islower()):
                out += '_'
        out += ch
    return c_name(out).upper()


class Schema:
    def __init__(self, exprs):
        self.entities = []
        self.by_name = {}
        for expr, info, doc in exprs:
            self._add(expr, info, doc)
        for ent in self.entities:
            self._check(ent)

    def _add(self, expr, info, doc):
        metas = [m for m in META_KEYS if m in expr]
        if len(metas) != 1:
            raise SchemaError(info, 'expression must have exactly one of the keys %s'
                              % ', '.join("'%s'" % m for m in sorted(META_KEYS)))
        meta = metas[0]
        extra = set(expr) - META_KEYS[meta]
        if extra:
            raise SchemaError(info, "%s has unknown key '%s'" % (meta, sorted(extra)[0]))
        if meta == 'pragma':
            return
        name = expr[meta]
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise SchemaError(info, "%s name %r is not a valid name" % (meta, name))
        if meta != 'command' and meta != 'event' and name in BUILTINS:
            raise SchemaError(info, "%s '%s' redefines a built-in type" % (meta, name))
        key = (meta if meta in ('command', 'event') else 'type', name)
        if key in self.by_name:
            raise SchemaError(info, "%s '%s' is already defined at %s:%d"
                              % (meta, name, *self.by_name[key].info))
        ent = Entity(meta, name, info, doc, expr)
        self.by_name[key] = ent
        self.entities.append(ent)

    def lookup_type(self, name):
        return self.by_name.get(('type', name))

    def _check_typeref(self, ent, ref, what, allow_list=True):
        if isinstance(ref, list):
            if not allow_list or len(ref) != 1 or not isinstance(ref[0], str):
                raise SchemaError(ent.info, "%s of '%s' must be a type name or a one-element list"
                                  % (what, ent.name))
            self._check_typeref(ent, ref[0], what, allow_list=False)
            return
        if not isinstance(ref, str):
            raise SchemaError(ent.info, "%s of '%s' must be a type name" % (what, ent.name))
        if ref not in BUILTINS and self.lookup_type(ref) is None:
            raise SchemaError(ent.info, "%s of '%s' uses unknown type '%s'" % (what, ent.name, ref))

    def _members(self, ent, data):
        if not isinstance(data, dict):
            raise SchemaError(ent.info, "'data' of %s '%s' must be an object" % (ent.meta, ent.name))
        out = []
        seen = set()
        for key, ref in data.items():
            optional = key.startswith('*')
            mname = key[1:] if optional else key
            if not NAME_RE.match(mname):
                raise SchemaError(ent.info, "member name '%s' of '%s' is not a valid name"
                                  % (key, ent.name))
            if mname in seen:
                raise SchemaError(ent.info, "member '%s' of '%s' is defined twice" % (mname, ent.name))
            seen.add(mname)
            self._check_typeref(ent, ref, "member '%s'" % mname)
            out.append(Member(mname, ref, optional))
        return out

    def _check(self, ent):
        e = ent.expr
        if ent.meta == 'enum':
            data = e.get('data')
            if not isinstance(data, list) or not data:
                raise SchemaError(ent.info, "'data' of enum '%s' must be a non-empty list" % ent.name)
            seen = set()
            ent.values = []
            for v in data:
                if isinstance(v, dict) and set(v) == {'name'}:
                    v = v['name']
                if not isinstance(v, str) or not NAME_RE.match(v):
                    raise SchemaError(ent.info, "enum '%s' has an invalid value %r" % (ent.name, v))
                if c_name(v).upper() in seen:
                    raise SchemaError(ent.info, "enum '%s' value '%s' clashes with another value"
                                      % (ent.name, v))
                seen.add(c_name(v).upper())
                ent.values.append(v)
            prefix = e.get('prefix')
            if prefix is not None and not isinstance(prefix, str):
                raise SchemaError(ent.info, "'prefix' of enum '%s' must be a string" % ent.name)
            ent.prefix = prefix or camel_to_upper(ent.name)
        elif ent.meta == 'struct':
            if 'data' not in e:
                raise SchemaError(ent.info, "struct '%s' lacks 'data'" % ent.name)
            own = self._members(ent, e['data'])
            ent.base = e.get('base')
            ent.all_members = list(own)
            if ent.base is not None:
                chain = []
                b = ent.base
                while b is not None:
                    bent = self.lookup_type(b) if isinstance(b, str) else None
                    if bent is None or bent.meta != 'struct':
                        raise SchemaError(ent.info, "base '%s' of '%s' must be a struct type"
                                          % (b, ent.name))
                    if bent is ent or bent in chain:
                        raise SchemaError(ent.info, "struct '%s' has a base cycle" % ent.name)
                    chain.append(bent)
                    b = bent.expr.get('base')
                inherited = []
                for bent in reversed(chain):
                    inherited.extend(self._members(bent, bent.expr['data']))
                names = {m.name for m in inherited}
                for m in own:
                    if m.name in names:
                        raise SchemaError(ent.info, "member '%s' of '%s' clashes with its base"
                                          % (m.name, ent.name))
                ent.all_members = inherited + own
        elif ent.meta == 'alternate':
            data = e.get('data')
            if not isinstance(data, dict) or not data:
                raise SchemaError(ent.info, "'data' of alternate '%s' must be a non-empty object"
                                  % ent.name)
            ent.branches = []
            classes = {}
            for bname, ref in data.items():
                if bname.startswith('*'):
                    raise SchemaError(ent.info, "alternate '%s' branch '%s' cannot be optional"
                                      % (ent.name, bname))
                if not isinstance(ref, str):
                    raise SchemaError(ent.info, "alternate '%s' branch '%s' must name a type"
                                      % (ent.name, bname))
                self._check_typeref(ent, ref, "branch '%s'" % bname, allow_list=False)
                kind = self.kind_of(ref)
                if kind == 'ALTERNATE' or kind == 'ANY':
                    raise SchemaError(ent.info, "alternate '%s' branch '%s' cannot be of type '%s'"
                                      % (ent.name, bname, ref))
                cls = JSON_CLASS[kind]
                if cls in classes:
                    raise SchemaError(ent.info, "alternate '%s' branches '%s' and '%s' cannot be told apart"
                                      % (ent.name, classes[cls], bname))
                classes[cls] = bname
                ent.branches.append(Member(bname, ref, False))
        elif ent.meta in ('command', 'event'):
            for flag in ('boxed', 'allow-oob', 'allow-preconfig'):
                if flag in e and not isinstance(e[flag], bool):
                    raise SchemaError(ent.info, "'%s' of '%s' must be true or false" % (flag, ent.name))
            ent.boxed = e.get('boxed', False)
            ent.allow_oob = e.get('allow-oob', False)
            data = e.get('data')
            ent.arg_type = None       # name of a struct type, or None
            ent.members = []
            if ent.boxed:
                if not isinstance(data, str):
                    raise SchemaError(ent.info, "'data' of boxed %s '%s' must name a struct type"
                                      % (ent.meta, ent.name))
                t = self.lookup_type(data)
                if t is None or t.meta != 'struct':
                    raise SchemaError(ent.info, "'data' of boxed %s '%s' must name a struct type"
                                      % (ent.meta, ent.name))
                ent.arg_type = data
            elif isinstance(data, str):
                t = self.lookup_type(data)
                if t is None or t.meta != 'struct':
                    raise SchemaError(ent.info, "'data' of %s '%s' must be an object or a struct type"
                                      % (ent.meta, ent.name))
                ent.arg_type = data
            elif data is not None:
                ent.members = self._members(ent, data)
            if ent.meta == 'command':
                ent.returns = e.get('returns')
                if ent.returns is not None:
                    self._check_typeref(ent, ent.returns, "'returns'")
            elif 'returns' in e:
                raise SchemaError(ent.info, "event '%s' cannot have 'returns'" % ent.name)

    def kind_of(self, ref):
        if isinstance(ref, list):
            return 'LIST'
        if ref in BUILTINS:
            return BUILTINS[ref]
        return self.lookup_type(ref).meta.upper()

    def arg_members(self, ent):
        if ent.arg_type is not None:
            return self.lookup_type(ent.arg_type).all_members
        return ent.members

    def of(self, meta):
        return [e for e in self.entities if e.meta == meta]


# ---------------------------------------------------------------------------
# C output

HEADER_NOTE = '/* SPDX-License-Identifier: GPL-2.0-or-later */\n/* Generated by scripts/qapi-gen.py from %s; do not edit. */\n'


def enum_const(ent, value):
    return '%s_%s' % (ent.prefix, c_name(value).upper())


class CGen:
    def __init__(self, schema, prefix, source):
        self.s = schema
        self.p = prefix
        self.source = source
        self.type_ids = {}     # ref key -> C identifier of its QapiType
        self.type_defs = []    # C definitions in dependency-free order (forward decls used)
        self.forward = []

    def note(self):
        return HEADER_NOTE % os.path.basename(self.source)

    # --- types.h / types.c
    def types_h(self):
        guard = c_name(self.p).upper() + '_TYPES_H'
        out = [self.note(), '#ifndef %s\n#define %s\n\n#include "qemu/osdep.h"\n' % (guard, guard)]
        for ent in self.s.of('enum'):
            out.append('/* %s */\ntypedef enum %s {\n' % (ent.name, c_name(ent.name)))
            for i, v in enumerate(ent.values):
                out.append('    %s = %d,\n' % (enum_const(ent, v), i))
            out.append('    %s__MAX,\n} %s;\n' % (ent.prefix, c_name(ent.name)))
            cn = c_name(ent.name)
            out.append('extern const char *const %s_lookup[%s__MAX];\n' % (cn, ent.prefix))
            out.append('/* The wire name of @val (NULL if out of range). */\n')
            out.append('const char *%s_str(%s val);\n' % (cn, cn))
            out.append('/* The value named @str, or -1 if there is none. */\n')
            out.append('int %s_parse(const char *str);\n\n' % cn)
        out.append('#endif\n')
        return ''.join(out)

    def types_c(self):
        out = [self.note(), '#include "qemu/osdep.h"\n#include "%s-types.h"\n\n' % self.p]
        for ent in self.s.of('enum'):
            cn = c_name(ent.name)
            out.append('const char *const %s_lookup[%s__MAX] = {\n' % (cn, ent.prefix))
            for v in ent.values:
                out.append('    [%s] = "%s",\n' % (enum_const(ent, v), v))
            out.append('};\n\n')
            out.append('const char *%s_str(%s val)\n{\n' % (cn, cn))
            out.append('    if ((unsigned)val >= %s__MAX) {\n        return NULL;\n    }\n' % ent.prefix)
            out.append('    return %s_lookup[val];\n}\n\n' % cn)
            out.append('int %s_parse(const char *str)\n{\n' % cn)
            out.append('    for (int i = 0; str && i < %s__MAX; i++) {\n' % ent.prefix)
            out.append('        if (strcmp(%s_lookup[i], str) == 0) {\n            return i;\n        }\n    }\n' % cn)
            out.append('    return -1;\n}\n\n')
        return ''.join(out)

    # --- type descriptor tables
    def type_id(self, ref):
        if isinstance(ref, list):
            key = '[%s]' % ref[0]
            ident = 'qapi_tl_' + c_name(ref[0])
        else:
            key = ref
            ident = ('qapi_tb_' if ref in BUILTINS else 'qapi_t_') + c_name(ref)
        if key in self.type_ids:
            return self.type_ids[key]
        self.type_ids[key] = ident
        self.forward.append('static const QapiType %s;\n' % ident)
        kind = self.s.kind_of(ref)
        body = ['static const QapiType %s = {\n    .kind = QAPI_KIND_%s,\n' % (ident, kind)]
        if isinstance(ref, list):
            body.append('    .name = "[%s]",\n    .element = &%s,\n' % (ref[0], self.type_id(ref[0])))
        else:
            body.append('    .name = "%s",\n' % ref)
            ent = self.s.lookup_type(ref)
            if kind == 'ENUM':
                body.append('    .enum_values = %s_lookup,\n    .n_members = %s__MAX,\n'
                            % (c_name(ref), ent.prefix))
            elif kind == 'STRUCT':
                arr = self.member_array(ident + '_members', ent.all_members)
                body.append('    .members = %s,\n    .n_members = %d,\n' % (arr, len(ent.all_members)))
            elif kind == 'ALTERNATE':
                arr = self.member_array(ident + '_branches', ent.branches)
                body.append('    .members = %s,\n    .n_members = %d,\n' % (arr, len(ent.branches)))
        body.append('};\n\n')
        self.type_defs.append(''.join(body))
        return ident

    def member_array(self, ident, members):
        if not members:
            return 'NULL'
        lines = ['static const QapiMember %s[] = {\n' % ident]
        for m in members:
            lines.append('    { "%s", &%s, %s },\n'
                         % (m.name, self.type_id(m.type), 'true' if m.optional else 'false'))
        lines.append('};\n\n')
        self.type_defs.append(''.join(lines))
        return ident

    def arg_type(self, ent):
        """QapiType for a command's or event's arguments (NULL if none)."""
        if ent.arg_type is not None:
            return '&' + self.type_id(ent.arg_type)
        if not ent.members:
            return 'NULL'
        ident = 'qapi_args_%s_%s' % (ent.meta, c_name(ent.name))
        arr = self.member_array(ident + '_members', ent.members)
        self.forward.append('static const QapiType %s;\n' % ident)
        self.type_defs.append('static const QapiType %s = {\n    .kind = QAPI_KIND_STRUCT,\n'
                              '    .name = "%s arguments",\n    .members = %s,\n'
                              '    .n_members = %d,\n};\n\n'
                              % (ident, ent.name, arr, len(ent.members)))
        return '&' + ident

    def commands_h(self):
        guard = c_name(self.p).upper() + '_COMMANDS_H'
        out = [self.note(), '#ifndef %s\n#define %s\n\n' % (guard, guard),
               '#include "qemu/osdep.h"\n#include <json-glib/json-glib.h>\n',
               '#include "qapi/qapi-desc.h"\n#include "%s-types.h"\n\n' % self.p,
               '/* Every command and event of this schema, with their argument types. */\n',
               'extern const QapiSchema %s_schema;\n\n' % c_name(self.p)]
        if self.p != 'qapi':
            out.append('/* Check @args against the schema entry of @name and run it. */\n')
            out.append('JsonNode *%s_dispatch(const char *name, JsonObject *args, GError **errp);\n\n'
                       % c_name(self.p))
        out.append('/* Handlers (see include/monitor/qmp.h for the contract). */\n')
        for ent in self.s.of('command'):
            out.append('JsonNode *qmp_%s(JsonObject *args, GError **errp);\n' % c_name(ent.name))
        out.append('\n#endif\n')
        return ''.join(out)

    def commands_c(self):
        cmds = []
        for ent in self.s.of('command'):
            args = self.arg_type(ent)
            ret = 'NULL' if ent.returns is None else '&' + self.type_id(ent.returns)
            cmds.append('    {\n        .name = "%s",\n        .fn = qmp_%s,\n        .args = %s,\n'
                        '        .returns = %s,\n        .allow_oob = %s,\n        .boxed = %s,\n    },\n'
                        % (ent.name, c_name(ent.name), args, ret,
                           'true' if ent.allow_oob else 'false', 'true' if ent.boxed else 'false'))
        evs = []
        for ent in self.s.of('event'):
            evs.append('    { .name = "%s", .data = %s },\n' % (ent.name, self.arg_type(ent)))
        out = [self.note(), '#include "qemu/osdep.h"\n#include "%s-commands.h"\n' % self.p,
               '#include "monitor/qmp.h"\n\n']
        out.extend(self.forward)
        out.append('\n')
        out.extend(self.type_defs)
        cn = c_name(self.p)
        out.append('static const QapiCommand %s_commands[] = {\n' % cn)
        out.extend(cmds)
        out.append('};\n\n')
        if evs:
            out.append('static const QapiEvent %s_events[] = {\n' % cn)
            out.extend(evs)
            out.append('};\n\n')
        out.append('const QapiSchema %s_schema = {\n    .commands = %s_commands,\n'
                   '    .n_commands = G_N_ELEMENTS(%s_commands),\n' % (cn, cn, cn))
        if evs:
            out.append('    .events = %s_events,\n    .n_events = G_N_ELEMENTS(%s_events),\n' % (cn, cn))
        out.append('};\n\n')
        fn = 'qmp_dispatch' if self.p == 'qapi' else cn + '_dispatch'
        out.append('JsonNode *%s(const char *name, JsonObject *args, GError **errp)\n{\n'
                   '    return qapi_schema_dispatch(&%s_schema, name, args, errp);\n}\n' % (fn, cn))
        return ''.join(out)

    # --- events
    def event_params(self, ent):
        params = []
        for m in self.s.arg_members(ent):
            kind = self.s.kind_of(m.type)
            cn = c_name(m.name)
            if kind == 'STR':
                params.append('const char *%s' % cn)
                continue
            if kind in ('STRUCT', 'LIST', 'ALTERNATE', 'ANY', 'NULL'):
                params.append('JsonNode *%s' % cn)
                continue
            ctype = {
                'INT': 'int64_t', 'INT8': 'int8_t', 'INT16': 'int16_t', 'INT32': 'int32_t',
                'INT64': 'int64_t', 'UINT8': 'uint8_t', 'UINT16': 'uint16_t',
                'UINT32': 'uint32_t', 'UINT64': 'uint64_t', 'SIZE': 'uint64_t',
                'NUMBER': 'double', 'BOOL': 'bool',
            }.get(kind) or c_name(m.type)
            if m.optional:
                params.append('bool has_%s' % cn)
            params.append('%s %s' % (ctype, cn))
        return params

    def event_setter(self, m):
        kind = self.s.kind_of(m.type)
        cn = c_name(m.name)
        if kind == 'STR':
            return 'json_object_set_string_member(data, "%s", %s);' % (m.name, cn)
        if kind in ('STRUCT', 'LIST', 'ALTERNATE', 'ANY', 'NULL'):
            return 'json_object_set_member(data, "%s", %s);' % (m.name, cn)
        if kind == 'BOOL':
            return 'json_object_set_boolean_member(data, "%s", %s);' % (m.name, cn)
        if kind == 'NUMBER':
            return 'json_object_set_double_member(data, "%s", %s);' % (m.name, cn)
        if kind == 'ENUM':
            return 'json_object_set_string_member(data, "%s", %s_str(%s));' % (m.name, c_name(m.type), cn)
        return 'json_object_set_int_member(data, "%s", (gint64)%s);' % (m.name, cn)

    def event_fn(self, ent):
        params = self.event_params(ent)
        return 'void qapi_event_send_%s(%s)' % (c_name(ent.name).lower(),
                                                ', '.join(params) if params else 'void')

    def events_h(self):
        guard = c_name(self.p).upper() + '_EVENTS_H'
        out = [self.note(), '#ifndef %s\n#define %s\n\n' % (guard, guard),
               '#include "qemu/osdep.h"\n#include <json-glib/json-glib.h>\n',
               '#include "%s-types.h"\n\n' % self.p,
               '/*\n * Emitters build the event data and call qmp_event_emit(); any thread.\n'
               ' * JsonNode arguments are taken over; an optional string or JsonNode\n'
               ' * is left out when NULL, other optional members when has_<member> is false.\n */\n']
        for ent in self.s.of('event'):
            out.append('%s;\n' % self.event_fn(ent))
        out.append('\n#endif\n')
        return ''.join(out)

    def events_c(self):
        out = [self.note(), '#include "qemu/osdep.h"\n#include "%s-events.h"\n' % self.p,
               '#include "monitor/qmp.h"\n\n']
        for ent in self.s.of('event'):
            out.append('%s\n{\n' % self.event_fn(ent))
            members = self.s.arg_members(ent)
            if not members:
                out.append('    qmp_event_emit("%s", NULL);\n}\n\n' % ent.name)
                continue
            out.append('    JsonObject *data = json_object_new();\n\n')
            for m in members:
                kind = self.s.kind_of(m.type)
                setter = self.event_setter(m)
                if m.optional:
                    if kind in ('STR', 'STRUCT', 'LIST', 'ALTERNATE', 'ANY', 'NULL'):
                        cond = '%s' % c_name(m.name)
                    else:
                        cond = 'has_%s' % c_name(m.name)
                    out.append('    if (%s) {\n        %s\n    }\n' % (cond, setter))
                else:
                    out.append('    %s\n' % setter)
            out.append('    qmp_event_emit("%s", data);\n}\n\n' % ent.name)
        return ''.join(out)


# ---------------------------------------------------------------------------
# Markdown reference

def type_text(ref):
    if isinstance(ref, list):
        return '[%s]' % ref[0]
    return ref


def doc_sections(doc):
    """Split a doc block into (title, body lines, {member: text})."""
    if not doc:
        return None, [], {}
    title = None
    body = []
    members = {}
    current = None
    for line in doc:
        if title is None and line.startswith('@') and line.rstrip().endswith(':') and ' ' not in line.strip():
            title = line.strip()[1:-1]
            continue
        m = re.match(r'^@([A-Za-z0-9_*.-]+):\s*(.*)$', line)
        if m:
            current = m.group(1)
            members[current] = m.group(2)
            continue
        if current is not None and line.startswith('  ') and line.strip():
            members[current] += ' ' + line.strip()
            continue
        current = None
        body.append(line)
    while body and not body[0].strip():
        body.pop(0)
    while body and not body[-1].strip():
        body.pop()
    return title, body, members


def markdown(schema, source):
    out = ['<!-- Generated by scripts/qapi-gen.py from %s; do not edit. -->\n'
           % os.path.basename(source), '# QMP reference\n\n']
    sections = [('command', 'Commands'), ('event', 'Events'), ('enum', 'Enumerations'),
                ('struct', 'Structures'), ('alternate', 'Alternates')]
    for meta, title in sections:
        ents = schema.of(meta)
        if not ents:
            continue
        out.append('## %s\n\n' % title)
        for ent in ents:
            _, body, mdoc = doc_sections(ent.doc)
            out.append('### `%s`\n\n' % ent.name)
            if body:
                out.append('\n'.join(body) + '\n\n')
            if meta == 'enum':
                for v in ent.values:
                    out.append('- `%s`%s\n' % (v, (': ' + mdoc[v]) if v in mdoc else ''))
                out.append('\n')
                continue
            if meta == 'alternate':
                for b in ent.branches:
                    out.append('- `%s`: %s\n' % (b.name, type_text(b.type)))
                out.append('\n')
                continue
            members = ent.all_members if meta == 'struct' else schema.arg_members(ent)
            if meta == 'struct' and ent.base:
                out.append('Base: `%s`\n\n' % ent.base)
            if meta in ('command', 'event') and ent.arg_type:
                out.append('Arguments: the members of `%s`%s.\n\n'
                           % (ent.arg_type, ' (boxed)' if ent.boxed else ''))
            if members:
                out.append('| member | type | optional | description |\n|---|---|---|---|\n')
                for m in members:
                    out.append('| `%s` | `%s` | %s | %s |\n'
                               % (m.name, type_text(m.type), 'yes' if m.optional else 'no',
                                  mdoc.get(m.name, '').replace('|', '\\|')))
                out.append('\n')
            elif meta == 'command':
                out.append('No arguments.\n\n')
            if meta == 'command':
                out.append('Returns: %s%s\n\n' % (
                    '`%s`' % type_text(ent.returns) if ent.returns else '`{}`',
                    ' (may be run with `exec-oob`)' if ent.allow_oob else ''))
    return ''.join(out)


def write_if_changed(path, text):
    try:
        with open(path, encoding='utf-8') as f:
            if f.read() == text:
                return
    except OSError:
        pass
    with open(path, 'w', encoding='utf-8') as f:
        f.write(text)


def main(argv):
    ap = argparse.ArgumentParser(description='Generate the QMP C tables from a QAPI schema.')
    ap.add_argument('-o', '--output-dir', default='.')
    ap.add_argument('-p', '--prefix', default='qapi',
                    help="output file and symbol prefix (default 'qapi')")
    ap.add_argument('--doc', help='name of the Markdown reference (default PREFIX-reference.md)')
    ap.add_argument('schema')
    args = ap.parse_args(argv)
    if not re.match(r'^[a-z][a-z0-9_-]*$', args.prefix):
        print('qapi-gen: prefix must be lower-case letters, digits, - or _', file=sys.stderr)
        return 1
    try:
        schema = Schema(read_schema(args.schema))
    except SchemaError as e:
        print('qapi-gen: %s' % e, file=sys.stderr)
        return 1
    gen = CGen(schema, args.prefix, args.schema)
    os.makedirs(args.output_dir, exist_ok=True)
    outputs = {
        '%s-types.h' % args.prefix: gen.types_h(),
        '%s-types.c' % args.prefix: gen.types_c(),
        '%s-commands.h' % args.prefix: gen.commands_h(),
        '%s-commands.c' % args.prefix: gen.commands_c(),
        '%s-events.h' % args.prefix: gen.events_h(),
        '%s-events.c' % args.prefix: gen.events_c(),
        args.doc or '%s-reference.md' % args.prefix: markdown(schema, args.schema),
    }
    for name, text in outputs.items():
        write_if_changed(os.path.join(args.output_dir, name), text)
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
