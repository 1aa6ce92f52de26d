# llama-napi builds with cmake-js (CMakeLists.txt); this file is a bridge for tools that only know
# node-gyp: `node-gyp rebuild` (node-gyp-build's fallback, `npm rebuild` on a package without an
# install script, electron-rebuild) runs scripts/build.mjs, which fetches the pinned llama.cpp
# and builds the same addon into build/Release, where node-gyp-build looks for it.
{
  "targets": [
    {
      "target_name": "llama_napi_cmake",
      "type": "none",
      "actions": [
        {
          "action_name": "cmake_js_build",
          "inputs": ["<(module_root_dir)/CMakeLists.txt"],
          "outputs": ["<(module_root_dir)/build/Release/llama_napi.node"],
          "action": ["node", "<(module_root_dir)/scripts/build.mjs"]
        }
      ]
    }
  ]
}
