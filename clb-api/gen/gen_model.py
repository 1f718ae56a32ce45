#!/usr/bin/env python3
"""Generates clb-api/src/model.rs from gen/model.txt (run: python3 clb-api/gen/gen_model.py)."""
import re, os
here = os.path.dirname(os.path.abspath(__file__))
lines = open(os.path.join(here, 'model.txt')).read().splitlines()
items = []
for line in lines:
    if not line.strip() or line.startswith('#'):
        continue
    if not line.startswith(' '):
        kind, name = line.split()
        items.append((kind, name, []))
    else:
        fname, ty = line.split()
        items[-1][2].append((fname, ty))

def snake(name):
    if name in {'AddressIPv6': 1, 'IP': 1}:
        return {'AddressIPv6': 'address_ipv6', 'IP': 'ip'}[name]
    s = re.sub(r'([A-Z]+)([A-Z][a-z])', r'\1_\2', name)
    s = re.sub(r'([a-z0-9])([A-Z])', r'\1_\2', s)
    s = s.lower()
    return {'type': 'r#type'}.get(s, s)

def pascal(sn):
    sn = sn.removeprefix('r#')
    return ''.join(p[:1].upper() + p[1:] for p in sn.split('_'))

out = ['//! Request and response structs of the CLB actions (generated from `gen/model.txt` by `gen/gen_model.py`).',
       '//! Optional fields are skipped when `None`; responses tolerate missing fields.',
       '#![allow(missing_docs)]', '', 'use serde::{Deserialize, Serialize};', 'use serde_json::Value;', '']
for kind, name, fields in items:
    sname = {'req': name + 'Request', 'resp': name + 'Response'}.get(kind, name)
    lenient = kind in ('out', 'resp')
    out.append('#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]')
    out.append('#[serde(rename_all = "PascalCase"' + (', default' if lenient else '') + ')]')
    out.append(f'pub struct {sname} {{')
    for fname, ty in fields:
        sn = snake(fname)
        if pascal(sn) != fname:
            out.append(f'    #[serde(rename = "{fname}")]')
        if ty.endswith('?'):
            out.append('    #[serde(default, skip_serializing_if = "Option::is_none")]')
            rty = f'Option<{ty[:-1]}>'
        else:
            rty = ty
        out.append(f'    pub {sn}: {rty},')
    if kind == 'resp':
        out.append('    pub request_id: String,')
    out.append('}')
    out.append('')
open(os.path.join(here, '..', 'src', 'model.rs'), 'w').write('\n'.join(out))
