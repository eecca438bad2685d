; Inno Setup 6 script: the Windows installer of hitl-desktop, from the PyInstaller bundle.
;
;   .venv\Scripts\python -m PyInstaller --noconfirm --distpath dist --workpath build\pyinstaller packaging\hitl-desktop.spec
;   "%ProgramFiles(x86)%\Inno Setup 6\ISCC.exe" /DAppVersion=0.1.0 packaging\windows\hitl-desktop.iss
;
; gives dist\hitl-desktop-<version>-setup.exe. Per-user install by default (no UAC prompt), or
; for all users when chosen in the dialog or with /ALLUSERS. Silent: /VERYSILENT /SUPPRESSMSGBOXES.
; Paths are relative to this file. Not built on the Linux development machine: the CI workflow
; .github/workflows/installers.yml builds and tests it on a Windows runner.

#ifndef AppVersion
  #error Pass the version: ISCC /DAppVersion=X.Y.Z hitl-desktop.iss (from pyproject.toml)
#endif
#define AppName "hitl-desktop"
#define AppExe "hitl-desktop.exe"
#define Root "..\.."

[Setup]
; The AppId identifies the product to Windows across versions: never change it.
AppId={{6B0F3C55-2F0B-4C7E-9A53-3B1E4C2D7A10}
AppName={#AppName}
AppVersion={#AppVersion}
AppVerName={#AppName} {#AppVersion}
AppPublisher=hitl-desktop
DefaultDirName={autopf}\{#AppName}
DefaultGroupName={#AppName}
DisableProgramGroupPage=yes
PrivilegesRequired=lowest
PrivilegesRequiredOverridesAllowed=dialog commandline
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
MinVersion=10.0
OutputDir={#Root}\dist
OutputBaseFilename={#AppName}-{#AppVersion}-setup
SetupIconFile={#Root}\build\icons\hitl-desktop.ico
UninstallDisplayIcon={app}\{#AppExe}
UninstallDisplayName={#AppName}
Compression=lzma2/max
SolidCompression=yes
WizardStyle=modern
; A running console holds its files open: ask to close it before replacing them.
CloseApplications=yes
RestartApplications=no

[Languages]
Name: "english"; MessagesFile: "compiler:Default.isl"

[Tasks]
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"; Flags: unchecked

[Files]
; The whole one-folder bundle: the executable and _internal\ (Python, Qt, resources, migrations).
Source: "{#Root}\dist\hitl-desktop\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{autoprograms}\{#AppName}"; Filename: "{app}\{#AppExe}"; Comment: "Review and approve the database changes AI agents propose"
Name: "{autodesktop}\{#AppName}"; Filename: "{app}\{#AppExe}"; Tasks: desktopicon

[Run]
Filename: "{app}\{#AppExe}"; Description: "{cm:LaunchProgram,{#AppName}}"; Flags: nowait postinstall skipifsilent

; The user's runs, settings and API key (in the Credential Manager) are not the installer's:
; uninstalling leaves them, as it leaves a user's documents.
