namespace Periscope.UnitTests.Events;

/// <summary>
/// Real bytes of Debian's linux-image-6.12.117+deb13-amd64 (vmlinux from its vmlinuz): x64_sys_call (0x14d0 bytes at
/// 0xffffffff810082b0, found as the call in do_syscall_64, up to the next function's endbr64) and its sys_call_table
/// (463 entries, link-time addresses as in the file). The kernel keeps sys_call_table for tracers but dispatches
/// through x64_sys_call, so the two must agree for every number.
/// </summary>
internal static class Linux612Dispatch
{
    public const ulong X64SysCall = 0xffffffff810082b0;

    public static readonly byte[] X64SysCallCode = System.Convert.FromBase64String(
        "8w8e+ujncQgAgf6+AAAAD4TEEgAAd2eD/lkPhD8UAAAPh9UAAACD/iwPhDUUAAAPhz8CAACD/hYPhJcRAAAPh+8DAACD/gsPhIMRAAAPh2sGAA" +
        "CD/gUPhCsUAAAPh30IAACD/gIPhP0PAAAPh78NAACF9g+E2BIAAOmi6UMAgf4eAQAAD4RFEgAAD4fHAAAAgf7xAAAAD4Q4EgAAD4Z5AQAAgf4I" +
        "AQAAD4SeEgAAD4f1AwAAgf79AAAAD4SHEgAAD4emBAAAgf73AAAAD4ReEAAAD4ekBwAAgf70AAAAD4T2EAAAD4dODgAAgf7yAAAAD4QzEgAA6U" +
        "UMVQCB/ocAAAAPhGITAAAPh7UAAACD/nAPhA4SAAAPh9wCAACD/mUPhPoRAAAPh78FAACD/l8PhD8TAAAPh4gHAACD/lwPhBsPAAAPhzENAACD" +
        "/loPhO8SAADpOZJDAIH+SwEAAA+ECxMAAA+HVQEAAIH+NQEAAA+EhxEAAA+H7wEAAIH+KgEAAA+EcBEAAA+HvgUAAIH+JAEAAA+EeBAAAA+Hug" +
        "YAAIH+IQEAAA+EaxAAAA+HZQ0AAIH+HwEAAA+EkBAAAOkepaAAgf6fAAAAD4RuEgAAD4fdAQAAgf6TAAAAD4RXEgAAD4dRAwAAgf6NAAAAD4SO" +
        "DwAAD4enBgAAgf6KAAAAD4RQDgAAD4flCwAAgf6IAAAAD4TrEAAA6ZVRSQCB/tkAAAAPhNcOAAAPh+oAAACB/skAAAAPhLsOAAAPh3YFAACB/s" +
        "QAAAAPhL0OAAAPhxQHAACB/sEAAAAPhDMOAAAPh+kLAACB/r8AAAAPhJQOAADpvMtHAIP+Qw+E+A8AAA+H6wEAAIP+Nw+E3w8AAA+GAAQAAIP+" +
        "PQ+EsBEAAA+GWwYAAIP+QA+EyA0AAA+HCAwAAIP+Pg+EjREAAOnSug0Agf65AQAAD4RCDwAAD4cgAgAAgf6uAQAAD4QzEQAAD4eeBAAAgf6pAQ" +
        "AAD4RtEAAAD4fZBwAAgf5OAQAAD4TqDQAAD4fiCwAAgf5MAQAAD4REEAAA6bnlSwCB/uQAAAAPhCAPAAAPhvYEAACB/uoAAAAPhGYRAAAPht4F" +
        "AACB/u4AAAAPhDUNAAAPh8QKAACB/usAAAAPhMAQAACB/u0AAAAPhe8EAADpZiw+AIH+QAEAAA+E2A0AAA+HmgMAAIH+OwEAAA+Egw8AAA+HBw" +
        "kAAIH+OAEAAA+EYAwAAA+HwgkAAIH+NgEAAA+EWg8AAOlPDzoAgf6qAAAAD4SHDQAAD4cnBAAAgf6lAAAAD4RUEAAAD4dkBwAAgf6iAAAAD4Q3" +
        "DAAAD4erCQAAgf6gAAAAD4QrEAAA6QiKQwCD/nsPhKYOAAAPh/IBAACD/nYPhFwNAAAPh0gGAACD/nMPhK0MAAAPh/0JAACD/nEPhBsNAADpzZ" +
        "kNAIP+IQ+Egw8AAA+HiwEAAIP+HA+EmA4AAA+HEQcAAIP+GQ+EyAsAAA+HcwkAAIP+Fw+EdQ4AAOnSABMAg/5OD4QSDgAAD4ckAQAAg/5JD4Tb" +
        "DQAAD4eNBgAAg/5GD4R5CwAAD4cZCQAAg/5ED4TWDQAA6SdGVACB/hMBAAAPhMoNAAAPh6IBAACB/g4BAAAPhB0NAAAPhxMFAACB/gsBAAAPhN" +
        "ULAAAPh6kJAACB/gkBAAAPhIUNAADpUH5FAIH+xAEAAA+Ecw4AAA+HJgEAAIH+vwEAAA+EnQ4AAA+HWAcAAIH+vAEAAA+E0AoAAA+HDggAAIH+" +
        "ugEAAA+ERw4AAOkZBU8Agf6ZAAAAD4R5DAAAD4fgBAAAgf6WAAAAD4RtCwAAD4drCQAAgf6UAAAAD4StDgAA6UT6NwCB/gMBAAAPhKgMAAAPh7" +
        "4DAACB/gABAAAPhPwKAAAPhwkJAACB/v4AAAAPhOgMAADpD5VKAIP+VA+EPQ4AAA+H0gUAAIP+UQ+EcwoAAA+HxQcAAIP+Tw+EAQ4AAOlzhEMA" +
        "g/4nD4QlDgAAD4fiBgAAg/4kD4TjCQAAD4ccBwAAg/4iD4TQDQAA6YfDGQCB/oEAAAAPhM4NAAAPhwkGAACD/n4PhMgJAAAPhwwHAACD/nwPhK" +
        "sNAADpmJUMAIH+ygEAAA+EYw0AAA+HvAQAAIH+xwEAAA+EvgkAAA+HJwcAAIH+xQEAAA+EHA0AAOkDiRsAgf4ZAQAAD4QaDQAAD4dcBQAAgf4W" +
        "AQAAD4TFCQAAD4ciBwAAgf4UAQAAD4TxDAAA6e4YSQCD/jIPhIEKAAAPh2gDAACD/i8PhA4KAAAPh44HAACD/i0PhEAKAADpYrGgAIP+EQ+EbA" +
        "wAAA+HJwUAAIP+Dg+EdAkAAA+HBQcAAIP+DA+ESQwAAOn2WQ0Ag/5rD4QFCwAAD4eFAwAAg/5oD4TUCQAAD4eiBwAAg/5mD4SbCwAA6RoFFQCB" +
        "/kYBAAAPhDYKAAAPh48CAACB/kMBAAAPhHAJAAAPh8YGAACB/kEBAAAPhA0KAADppbBEAIH+MAEAAA+EPQoAAA+HMQIAAIH+LQEAAA+EMQkAAA" +
        "+HaAcAAIH+KwEAAA+EzQoAAOlg6UoAgf60AQAAD4QHCwAAD4cQBAAAgf6xAQAAD4SYCAAAD4ceBgAAgf6vAQAAD4TeCgAA6Zt3RwCB/tAAAAAP" +
        "hOcJAAAPh9cCAACB/swAAAAPhA0JAAAPh4QGAACB/soAAAAPhMwKAADpxvgSAIH+swAAAA+EQwoAAA+HOwQAAIH+rQAAAA+E3gcAAA+HNwUAAI" +
        "H+qwAAAA+EOAoAAOmhxAMAgf7fAAAAD4SQCgAAD4etBAAAgf7cAAAAD4QaCgAAD4fSBAAAgf7aAAAAD4RnCgAA6Uz2DADpdwwAAIH+JwEAAA+E" +
        "1QgAAA+HmgYAAIH+JQEAAA+EvggAAOnUjkoAgf76AAAAD4QCCQAAD4eZBgAAgf74AAAAD4TrCAAA6SFnVQCB/pAAAAAPhNILAAAPh6kGAACB/o" +
        "4AAAAPhLsLAADpXuwSAIP+Yg+ExgsAAA+HqAYAAIP+YA+EsgsAAOnRwQ0Ag/4ID4RtCwAAD4d9BgAAg/4GD4RZCwAA6cQCRgCD/joPhKALAAAP" +
        "h3wGAACD/jgPhIwLAADpF5kLAIH+5wAAAA+EigsAAA+HHgYAAIH+5QAAAA+E7ggAAOmEiRoAgf4GAQAAD4TPBwAAgf4HAQAAD4S+BwAAgf4EAQ" +
        "AAD4StBwAA6XsgSQCB/scAAAAPhDIIAACB/sgAAAAPhCEIAACB/sUAAAAPhBAIAADpQslHAIH+MwEAAA+EzQcAAIH+NAEAAA+EvAcAAIH+MQEA" +
        "AA+EqwcAAOnpEUkAgf5JAQAAD4QwCAAAgf5KAQAAD4QfCAAAgf5HAQAAD4QOCAAA6bDpQwCB/hEBAAAPhD8HAACB/hIBAAAPhC4HAACB/g8BAA" +
        "APhB0HAADpZ58LAIP+NQ+EuQcAAIP+Ng+EqwcAAIP+Mw+EnQcAAOn3oaAAgf6dAAAAD4RGBwAAgf6eAAAAD4Q1BwAAgf6aAAAAD4QkBwAAgf6b" +
        "AAAAD4X7/f//6TJ8RwCD/nkPhKAHAACD/noPhJIHAACD/ncPhIQHAADpoqYNAIP+bg+EMAcAAIP+bw+EIgcAAIP+bA+EFAcAAOlSrw0Agf7VAA" +
        "AAD4S7CAAAD4flBAAAgf7RAAAAD4SkCAAAgf7SAAAAD4WM/f//6RPZSwCB/qwBAAAPhM0IAACB/q0BAAAPhLwIAACB/qoBAAAPhKsIAADpapNo" +
        "AIH+zQEAAA+ELQcAAA+HngQAAIH+ywEAAA+EUgcAAOnnB1YAg/5MD4QQCQAAg/5ND4QCCQAAg/5KD4T0CAAA6UcSSQCB/qgAAAAPhK0HAACB/q" +
        "kAAAAPhJwHAACB/qYAAAAPhIsHAADpjqg8AIP+Hw+EiwgAAIP+IA+EfQgAAIP+HQ+EbwgAAOmOxFQAg/5XD4QXBwAAg/5YD4QJBwAAg/5VD4T7" +
        "BgAA6R5/RQCB/rcBAAAPhOQHAACB/rgBAAAPhNMHAACB/rUBAAAPhMIHAADpRaEOAIH+HAEAAA+EawcAAIH+HQEAAA+EWgcAAIH+GgEAAA+ESQ" +
        "cAAOm8REsAg/4UD4TlBwAAg/4VD4TXBwAAg/4SD4TJBwAA6QziQwCB/oQAAAAPhBQGAAAPh5EDAACB/oIAAAAPhAwGAADpeUsNAIH+vAAAAA+E" +
        "dwcAAIH+vQAAAA+EZgcAAIH+ugAAAA+EVQcAAIH+uwAAAA+F7fv//+n0wDIAgf7CAQAAD4SiBgAAgf7DAQAAD4SRBgAAgf7AAQAAD4SABgAA6U" +
        "uCGwCB/j4BAAAPhGkHAACB/j8BAAAPhFgHAACB/jwBAAAPhEcHAADp4tkfAIP+Kg+EAwYAAIP+Kw+E9QUAAIP+KA+E5wUAAOmSkKAAgf7iAAAA" +
        "D4TtAgAAgf7jAAAAD4TcAgAAgf7gAAAAD4TLAgAA6aluGgCD/iUPhEwFAADp28MaAIH+3QAAAA+EwAIAAOkKaRoAg/5/D4TGAgAA6dwzDQCB/r" +
        "0BAAAPhKsCAADpS6RdAIH+rwAAAA+ErgIAAIH+sAAAAA+F9/r//+kO9hgAgf45AQAAD4SbAgAA6f3hEgCB/sgBAAAPhLICAADp3H1HAIP+Ug+E" +
        "kAIAAOm+akUAgf6jAAAAD4SnAgAA6R1PGQCB/hcBAAAPhGQCAADpPBpJAIP+Rw+EfgIAAOlenEUAgf6yAQAAD4RZAgAA6d2VCwCD/hoPhHMCAA" +
        "Dpb8s3AIP+Dw+EbwIAAOkRvUUAgf6LAAAAD4SuAgAA6YCNDQCB/kQBAAAPhHUCAADpD/I3AIH+7wAAAA+EtAIAAOm++1QAg/50D4RCAgAA6aCb" +
        "DQCD/gMPhIQCAADpYm1EAIP+MA+ETgIAAOkElKAAgf7CAAAAD4SNAgAA6UPCRwCB/s4AAAAPhPoBAACB/s8AAAAPhd/5///p9stLAIP+XQ+EMA" +
        "IAAOm4jkMAgf4MAQAAD4T3AQAA6Yd6QwCB/gEBAAAPhDYCAADppmhFAIP+aQ+ExAEAAOmokA0Ag/5BD4QGAgAA6Yp0VACB/pcAAAAPhM0BAADp" +
        "ifQ3AIH+LgEAAA+EDAIAAOm4/00Agf5PAQAAD4RLAgAAgf6oAQAAD4VU+f//6es7DQCB/igBAAAPhAoDAADpukINAIH+IgEAAA+EbQIAAOlJAk" +
        "sAgf77AAAAD4SsAgAA6bgjZACB/vUAAAAPhOYCAADphzkcAIH+6AAAAA+ELQUAAOn2EEsAgf6RAAAAD4T0BAAA6QX2EgCD/gkPhCIFAADpF3U4" +
        "AIP+Yw+EKAUAAOkppw0Ag/47D4TaAwAA6PsDDACB/tgAAAAPhbP4///p+kI4AIH+zgEAAA+Fovj//+l5BzoAgf6FAAAAD4WR+P//6fhkRQDpA7" +
        "oaAOkeaRoA6cl2GgDpNHIaAOk/jAwA6cpdMgDpdbwDAOkAoF0A6ZufXQDpVvcMAOmxLBkA6WztGADpl4AbAOnC7RgA6Z08VADpiFI/AOnjCkkA" +
        "6X6FRQDpyZ04AOlkmg4A6S98QwDp+oIbAOnlf0kA6dA4VADpm/1IAOlmBhwA6WHxDADpPKE4AOkXREkA6fJtAwDpXYxDAOlIxksA6XOXQwDpDr" +
        "kPAOl5cVQA6SSUDQDp3/Y9AOka9hMA6TX3PQDpwIRDAOkLvkcA6QaloADpoeBKAOlc8jcA6TeOSwDpstFGAOltbEQA6TiOQwDpc6ugAOn+n0MA" +
        "6RnwNwDp1I5UAOmvtg8A6Wr3PQDpVaUNAOlgmEMA6RvyEgDpVr9HAOnRdjEA6YzDDQDpl0UZAOnCn6AA6Z3KRQDpuLxHAOnzv0cA6S6LQwDpOW" +
        "5FAOlEa0QA6a+SoADpuv1FAOm1chsA6RByGwDpqwwMAOkWy0QA6aHdQwDp7AoJAOmnrw0A6bKRDQDp7U4cAOl4DCgA6ZP6QwDpXnkaAOnpVw8A" +
        "6SSpoADpv5gNAOkq1gMA6SVgAwDpwNYNAOmbiQ0A6bZdVQDpkX1VAOlsUUsA6ef+TQDpwsBHAOmtOw0A6YjBRwDpQ9VLAOm+pA0A6fmoDQDppK" +
        "MNAOl/oEMA6dqYoADp1aCgAOmAjqAA6TsUOADp1spEAOkB/VQA6awgZADp1/hFAOkC30MA6Z1zOADpGHM4AOnzow0A6b6eDQDpSaENAOlEqA0A" +
        "6Z8USwDpesZGAOllKEsA6WDfQwDpm2FFAOn2eBoA6eH9VADpjAJWAOlnGEkA6TL0TgDprVsNAOk4dhoA6dOuoADp3kBLAOmZsw0A6TSJVADpD7" +
        "0aAOnKME0A6dUBVgDpoKGgAOl7dkUA6dbBVADpcTVUAOm8+0gA6VeFSgDpksZFAOntfUkA6UifQwDpI51DAOn+cUUA6TluRQDp1KENAOn/og0A" +
        "6apzGwDptV4LAOmwahoA6XvqQwDplpSgAOlhlqAA6Tw+SwDpZ/hUAOkyt0cA6V33RQDpKAA8AOmjMEcA6b6ODwDp+Z88AOmUtTAA6a/VDQDpKk" +
        "JJAOl1/zkA6TDkEgDp61UyAOl2EDIA6bEUPgDp3KcMAOk3qg0A6XL4VADp7R84AOkI2EMA6YMoSwDpvnRDAOkZUEsA6WSESgDpz4BFAOlq1UMA" +
        "6ZVsRADpUGNnAOmLyUsA6Wb+SgDp4aNEAOlcgUMA6SdACQDpcnNHAOktAUkA6YgQSwDpE5dDAOkOADwA6el1QwDpJHhHAOlfYmcA6QpsRwDpJV" +
        "JHAOkA90EA6WuhDQDp1rVHAOlBtUcA6SzFRgDpx1kNAOkSK0kA6S2nDQDpWDsNAOkz2UMA6f51QwDpmdpDAOkkZ0UA6c+zVADpmsZGAOnltFQA" +
        "6eCgDQDpa35FAOlWQkMA6bG3jADpjHlJAOkX8xIA6SIWSQDpvcANAOloaEcA6fMISQDpfnJDAOm5bEMA6RTyEgDpj04ZAOnKgkMA6QU1DQDpgA" +
        "0MAOmrZ0QA6Ya/QwDpod8SAOk8aUQA6QeaoADpApcLAOl9cTgA6XjIDQDpg9oSAOne2RIA6UkNSwDpNGhEAOl/RRkA6ZrHDQDpRfoDAOmwNg0A" +
        "6YuOCwDpBo4LAOkB1Q0A6Mz/CwBmLg8fhAAAAAAAZpCQkJCQkJCQkJCQkJCQkJCQ");

    public static readonly byte[] SysCallTable = System.Convert.FromBase64String(
        "cGtEgf/////QbESB/////5AqRIH/////cDNEgf////9Q/kSB/////3D/RIH/////sP5Egf////9wjkaB/////5BWRIH/////kJEEgf////9ABz" +
        "mB/////8CoOIH/////0LU4gf////+Q4w2B/////2CEDYH/////AAEEgf////+wTUaB//////BtRIH/////wG9Egf/////QcESB/////zBxRIH/" +
        "////kAxEgf////9gX0WB//////CMRoH/////8IcTgf////+gMDmB/////0A0OYH/////AFw4gf/////AlTyB/////3BKVYH/////wFJVgf////" +
        "+QS1WB/////0BdR4H/////oFtHgf////9A8A2B/////zBMGoH/////gEwbgf////8gUhuB/////6BTG4H/////kDcOgf/////wf0SB/////yAg" +
        "oYH/////4Cuhgf////8QKqGB/////yAxoYH/////cDOhgf/////QOqGB/////+A+oYH/////UDihgf////8AJaGB/////4AmoYH/////UC2hgf" +
        "/////QLqGB/////wAjoYH/////UDWhgf/////ANqGB/////+AlDIH/////4CQMgf////9gJQyB/////wA6RYH/////QJYMgf////+ApAyB////" +
        "/wDMDYH/////QEAOgf////+gBFWB/////1AiVYH/////AAZVgf////8AV1WB/////6DKVIH/////gM1Ugf////9gz1SB/////8DLVIH/////0C" +
        "xGgf/////gxU2B/////9CfSYH/////MKBJgf////+gA0SB/////2AJRIH/////0FtGgf////+QwUmB//////AMRIH/////EA9Egf////9QGEaB" +
        "/////wD7RYH/////wP1Fgf////9wMkSB/////3ANRoH/////kANGgf////9QB0aB/////1AARYH/////wBlEgf////9AFkSB/////3AfRIH///" +
        "//oCFEgf/////wH0SB/////6BfDoH/////wNwZgf////9gTQ6B/////+BeDoH/////YGwOgf////9gOQ6B/////7A9DYH/////YDgOgf/////g" +
        "jhWB/////+A4DoH/////UCcOgf////8QIg6B/////6A4DoH/////IDkOgf////+gPA6B/////xA4DoH/////YD0Ogf////8QQA6B/////7AlDo" +
        "H/////sCAOgf////8wShCB/////zBMEIH/////gCwOgf/////gLA6B/////3AzDoH/////0DMOgf////8APQ6B/////wA2DoH/////MDcOgf//" +
        "//+wPQ6B/////3AeDYH/////0B4Ngf////8Aig2B/////8DDDYH/////4NENgf////+g8A2B/////2DaDYH/////UK1Jgf////9w90WB/////4" +
        "CXAIH/////IC4Mgf/////g10mB/////2DWSYH/////INdJgf////8QZUeB/////zAeDoH/////0B0Ogf////+wcROB/////9B3E4H/////EHET" +
        "gf////+wdhOB/////yCIE4H/////AIkTgf/////giROB/////2CCOIH/////kIM4gf////+whTiB/////xCGOIH/////8DREgf////9QagSB//" +
        "///0AJSIH/////gJcAgf/////wag6B/////1D0A4H/////gOUZgf////+QVw6B/////7AQRIH/////sJ1Jgf////9gmRyB/////3DfGYH/////" +
        "QP9Hgf////9AxkeB/////6A2PYH/////oDU9gf////9gJBCB/////6BDDoH/////oEgOgf////9wTwSB/////xBPBIH/////gJcAgf////8ggB" +
        "mB/////yCGGYH/////gJcAgf////+AlwCB/////yCJT4H/////gJcAgf////+AlwCB/////4CXAIH/////gJcAgf////+AlwCB/////4CXAIH/" +
        "////0DcOgf////8QUDOB/////7BLSIH/////QExIgf/////ATEiB/////3BQSIH/////4FBIgf////9QUUiB//////BSSIH/////UFNIgf////" +
        "+wU0iB/////xBVSIH/////gFVIgf/////gVUiB/////wDQDYH/////QNkZgf////8QCRyB/////2CDE4H/////sIUTgf////+AlwCB/////2BZ" +
        "TIH/////IF1Mgf////+gaUyB/////6BfTIH/////kGZMgf////+AlwCB/////4CXAIH/////gJRLgf////+AlwCB/////4CXAIH/////UNU4gf" +
        "////9QXkaB/////yD0C4H/////UIENgf////9AHlWB/////2DwMoH/////4Pgagf////8gABuB/////6D7GoH/////YP4agf/////ABBuB////" +
        "/1AJG4H/////MAsbgf/////QDRuB/////3AVG4H/////MJcMgf////+ApEuB/////wCjS4H/////AM4Ngf/////wrEmB/////4CXAIH/////gL" +
        "I+gf////8Qij6B//////CKPoH/////kIxVgf/////wjVWB/////1COVYH/////8I9Vgf////+QkVWB/////8CSVYH/////gMscgf////+QoAyB" +
        "//////DxVYH/////cPJVgf/////QEVaB/////0C1ZIH/////oLVkgf////9gGkuB/////5AaS4H/////YB1Lgf////9wij6B//////ArRIH///" +
        "//APpFgf////9w9kWB//////AeRIH/////kKxJgf////8Q/0SB/////wACRoH/////0BZGgf////+gC0aB//////AFRoH/////0P9Egf////8A" +
        "GESB/////9ALRIH/////cI1Ggf////+QkUaB/////yAsDIH/////8AUcgf////+QBhyB//////CQSYH/////YJdJgf////8wokmB/////5CQSY" +
        "H/////UOU/gf////+gqkmB/////8CmS4H/////cL5Lgf////9g00uB/////xDmS4H/////sApEgf/////A00uB/////+DVS4H/////kCmhgf//" +
        "//8wvUuB/////7DlS4H/////IJRLgf////9AW0eB/////wBfRYH/////ABpLgf////+QcUSB/////zB0RIH/////gNQNgf////9ASzGB/////9" +
        "BDoYH/////kHNLgf/////wc0uB/////zBXDoH/////UJFOgf////8wk06B/////3ANG4H/////UJ5Jgf////9APaGB/////wDsD4H/////YGsO" +
        "gf////8wlTqB/////7CVOoH/////YL8Zgf////+AgBmB/////yByE4H/////8HkTgf////8gFUaB/////1BpIIH/////cE6Ngf////8Q2UOB//" +
        "////DiHIH/////gKAogf////+gOkWB/////5AhTIH/////UIkUgf/////QgjiB/////6CORIH/////oHNEgf////9AdkSB/////8AHOYH/////" +
        "QAg5gf////+gCDmB/////6ACRYH/////gGtMgf////9wCjKB/////+CeCYH/////gJcAgf////+AlwCB/////4CXAIH/////gJcAgf////+Alw" +
        "CB/////4CXAIH/////gJcAgf////+AlwCB/////4CXAIH/////gJcAgf////+AlwCB/////4CXAIH/////gJcAgf////+AlwCB/////4CXAIH/" +
        "////gJcAgf////+AlwCB/////4CXAIH/////gJcAgf////+AlwCB/////4CXAIH/////gJcAgf////+AlwCB/////4CXAIH/////gJcAgf////" +
        "+AlwCB/////4CXAIH/////gJcAgf////+AlwCB/////4CXAIH/////gJcAgf////+AlwCB/////4CXAIH/////gJcAgf////+AlwCB/////4CX" +
        "AIH/////gJcAgf////+AlwCB/////4CXAIH/////gJcAgf////+AlwCB/////4CXAIH/////gJcAgf////+AlwCB/////4CXAIH/////gJcAgf" +
        "////+AlwCB/////4CXAIH/////gJcAgf////+AlwCB/////4CXAIH/////gJcAgf////+AlwCB/////4CXAIH/////gJcAgf////+AlwCB////" +
        "/4CXAIH/////gJcAgf////+AlwCB/////4CXAIH/////gJcAgf////+AlwCB/////4CXAIH/////gJcAgf////+AlwCB/////4CXAIH/////gJ" +
        "cAgf////+AlwCB/////4CXAIH/////gJcAgf////+AlwCB/////4CXAIH/////gJcAgf////+AlwCB/////4CXAIH/////gJcAgf////+AlwCB" +
        "/////4CXAIH/////gJcAgf////+AlwCB/////4CXAIH/////gJcAgf////+AlwCB/////4CXAIH/////gJcAgf////+AlwCB/////4CXAIH///" +
        "//gJcAgf////+gzQ2B/////2D5Z4H/////sPhngf////8QIWmB/////4DoR4H/////YAJIgf////9QEEqB/////zATSoH/////AAJIgf/////Q" +
        "EkqB/////0AtD4H/////YCYMgf////+QNESB/////1AtRIH/////wC8Pgf////8wDESB/////1CWPIH/////YKlLgf////+gCUiB/////wCNT4" +
        "H/////QDJegf////+gMl6B/////0A0XoH/////YI1Cgf////+w6zKB/////5ARHIH/////gKo+gf////9ApjKB/////4AXRIH/////UNYJgf//" +
        "//8QEhyB/////1ATHIH/////4BUcgf////8QDkiB/////3AOSIH/////8JZWgf////+wlVaB/////3CXVoH/////4Jk6gf////8=");
}
