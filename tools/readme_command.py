#!/usr/bin/env python3
"""Print a command from README.md's Quick start: `test` (default) or `main`: the bash blocks in that order."""
import re, sys
from pathlib import Path

def quickstart_commands(readme=Path(__file__).resolve().parent.parent / 'README.md'):
    text = Path(readme).read_text()
    qs = text.split('## Quick start', 1)[1].split('\n## ', 1)[0]
    blocks = re.findall(r'```bash\n(.*?)\n```', qs, re.S)
    if len(blocks) != 2: raise SystemExit(f'README Quick start must hold exactly 2 bash blocks (main job, tests); found {len(blocks)}')
    return dict(main=blocks[0].strip(), test=blocks[1].strip())

if __name__ == '__main__':
    print(quickstart_commands()[sys.argv[1] if len(sys.argv) > 1 else 'test'])
