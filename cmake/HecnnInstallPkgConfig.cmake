# Run by `cmake --install` (see HecnnInstall.cmake): writes hecnn.pc and hecnn-ckks.pc for the prefix
# actually installed to (CMAKE_INSTALL_PREFIX here is the one given to --prefix) and installs them.
set(HECNN_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
foreach(_hecnn_dir LIBDIR INCLUDEDIR)
  if(IS_ABSOLUTE "${HECNN_PC_${_hecnn_dir}_REL}")
    set(HECNN_PC_${_hecnn_dir} "${HECNN_PC_${_hecnn_dir}_REL}")
  else()
    set(HECNN_PC_${_hecnn_dir} "\${prefix}/${HECNN_PC_${_hecnn_dir}_REL}")
  endif()
endforeach()
set(_hecnn_pcdir "${HECNN_PC_DIR_REL}")
if(NOT IS_ABSOLUTE "${_hecnn_pcdir}")
  set(_hecnn_pcdir "${CMAKE_INSTALL_PREFIX}/${_hecnn_pcdir}")
endif()
foreach(_hecnn_pc hecnn hecnn-ckks)
  configure_file("${HECNN_PC_BINARY_DIR}/${_hecnn_pc}.pc.in" "${HECNN_PC_BINARY_DIR}/install/${_hecnn_pc}.pc" @ONLY)
endforeach()
file(INSTALL "${HECNN_PC_BINARY_DIR}/install/hecnn.pc" "${HECNN_PC_BINARY_DIR}/install/hecnn-ckks.pc"
     DESTINATION "${_hecnn_pcdir}")
