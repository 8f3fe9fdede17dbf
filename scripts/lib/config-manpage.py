#!/usr/bin/env python3
"""Writes uploader.toml(5) (mdoc) from the configuration key table.

usage: uploader config keys --format json | config-manpage.py - YYYY-MM-DD > uploader.toml.5
       config-manpage.py KEYS.json YYYY-MM-DD > uploader.toml.5

The key table (Sources/UploaderCore/ConfigKeys.swift) is the one place each
key's name, type, default and documentation are written; the parser, the
example Config/uploader.toml and docs/configuration-keys.md come from it too,
so the manual never disagrees with them.
"""
import json
import sys


def roff(text):
    text = text.replace('\\', '\\e')
    return '\\&' + text if text[:1] in ('.', "'") else text


def main():
    path, date = sys.argv[1], sys.argv[2]
    source = sys.stdin if path == '-' else open(path, encoding='utf-8')
    sections = json.load(source)
    out = [
        f'.Dd {date}', '.Dt UPLOADER.TOML 5', '.Os',
        '.Sh NAME', '.Nm uploader.toml', '.Nd configuration of the uploader body-worn camera ingest agent',
        '.Sh SYNOPSIS', '.Pa /etc/uploader/uploader.toml',
        '.Sh DESCRIPTION',
        'The configuration of', '.Xr uploader 1 ,',
        'in TOML. Every command reads it from', '.Fl -config ,',
        'else', '.Ev UPLOADER_CONFIG ,', 'else', '.Pa /etc/uploader/uploader.toml .',
        '.Ic uploader config check',
        'lists every problem with its line and key; a key this version does not know is an error.',
        'Sizes take K, M, G (KiB, MiB, GiB) suffixes;',
        'relative paths are resolved against the folder of the file.',
        '.Pp',
        'The agent runs as the user', '.Sy uploader',
        'in sandboxed units that may write only', '.Pa /var/spool/uploader',
        'and', '.Pa /var/lib/uploader :',
        'a site that moves', '.Cm [paths]',
        'adds its folders to the units with', '.Ic systemctl edit',
        '.Pq Cm ReadWritePaths= .',
    ]
    out.append('.Sh SECTIONS')
    for section in sections:
        out += [f'.Ss [{section["name"]}]']
        if section['doc']:
            out += [roff(l) for l in section['doc']] + ['.Pp']
        out.append('.Bl -tag -width Ds')
        for key in section['keys']:
            value = key.get('example') or key.get('default')
            head = f'.It Cm {key["name"]}'
            if value is not None:
                head += ' No = Li ' + roff(value).replace('"', '\\(dq')
            if key['optional']:
                head += ' Pq optional'
            elif key['required']:
                head += ' Pq required'
            out.append(head)
            out.extend(roff(l) for l in key['doc'] if l)
            facts = [key['type']]
            if key.get('default') is not None and key['type'] != 'table':
                facts.append('default ' + key['default'])
            out.append(roff('(' + ', '.join(facts) + ')').replace('"', '\\(dq'))
        out.append('.El')
    out += [
        '.Sh FILES',
        '.Bl -tag -width Ds',
        '.It Pa /etc/uploader/uploader.toml', 'This configuration.',
        '.It Pa /etc/uploader/credentials',
        'The store\'s access key: access_key_id and secret_access_key, owned by uploader, mode 0600.',
        '.It Pa /etc/uploader/cameras.toml',
        'The supported camera models (USB ids, media folders, serial, recording time); its comments describe each key.',
        '.It Pa /var/spool/uploader', 'The spool: verified copies waiting for the store.',
        '.It Pa /var/lib/uploader/ledger.sqlite', 'The transfer ledger and custody log.',
        '.El',
        '.Sh SEE ALSO',
        '.Xr uploader 1 ,', '.Xr systemd.exec 5 ,', '.Xr udev 7',
    ]
    print('\n'.join(out))


if __name__ == '__main__':
    main()
