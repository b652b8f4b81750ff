# report.sh - the image's command in Larder's image build test: one line from each part the build installed
set -e
echo "python-tarball: $(head -n 1 /opt/pyenv/versions/*/LARDER-STANDIN.txt)"
echo "wheel: $(python -c 'import sys, beta, top; print("beta", beta.VERSION, "top", top.VERSION, "in", sys.prefix)')"
echo "git: RELEASE=$(cat RELEASE) $(cat PATCHED-* | tr '\n' ' ')"
echo "node: $(node -e 'const s = require("larder-test-server"); console.log(process.version, s.name + "@" + s.version, s.deps.join(","))')"
echo "apt: $(hello -g 'hello from the apt-installed hello') ($(dpkg-query -W -f '${Package} ${Version}' figlet))"
