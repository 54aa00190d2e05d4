# install-units.cmake — run by `cmake --install` (and CPack): installs the
# systemd units from deploy/systemd/ with ExecStart pointing at the binaries
# of the prefix being installed (/usr/bin in the Debian package,
# /usr/local/bin by default). Set by the install(CODE) line before it:
# MC_SRC (source dir), MC_TMP (scratch dir in the build tree), MC_BINDIR,
# MC_UNITDIR (relative to the prefix, or absolute).
foreach(unit meshcdn-edge@.service meshcdn-origin.service)
  file(READ "${MC_SRC}/deploy/systemd/${unit}" txt)
  string(REPLACE "/usr/bin/meshcdn-" "${CMAKE_INSTALL_PREFIX}/${MC_BINDIR}/meshcdn-" txt "${txt}")
  file(MAKE_DIRECTORY "${MC_TMP}")
  file(WRITE "${MC_TMP}/${unit}" "${txt}")
  if(IS_ABSOLUTE "${MC_UNITDIR}")
    set(dest "${MC_UNITDIR}")
  else()
    set(dest "${CMAKE_INSTALL_PREFIX}/${MC_UNITDIR}")
  endif()
  file(INSTALL DESTINATION "${dest}" TYPE FILE
       PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ FILES "${MC_TMP}/${unit}")
endforeach()
